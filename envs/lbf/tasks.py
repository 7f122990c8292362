"""LBF layouts as tasks: walls, player starts and levels, food and food levels.

:class:`LBFTaskSpace` is LBF's :class:`marl.tasks.TaskSpace`; ``LBFEnv.task_space`` is the one
of an environment's size and ``LBFEnv.set_tasks`` plays its tokens (see the card in
``marl.envs.lbf``). Cells are ``(row, col)``; a cell's index is ``row * cols + col``.

Tokens
------
``length = W + N + F`` for up to ``W`` walls (``max_walls``), ``N`` players and ``F`` food
items; ``vocab = 1 + cells * L`` where ``L = max(max_player_level, max_food_level)``:

- ``W`` wall tokens: ``1 + cell index``, ``0`` for no wall; canonical: ascending, zeros last.
- ``N`` player tokens, in agent order: ``1 + cell index * L + (level - 1)``.
- ``F`` food tokens, the same code; canonical: ascending (row-major order of the cells).

Legal layouts
-------------
Walls on distinct cells; players on distinct free (non-wall) cells; food on distinct free cells
without a player. The *area* is the set of free cells without food that are 4-connected to
player 0 (food blocks the way as it does in play). Legal means: every player stands in the
area, every food item has an orthogonal neighbour in the area (it is reachable without eating
anything first), and every food's level is at most what the players that can stand around it
at once can load: the sum of the ``min(k, N)`` highest player levels, ``k`` its neighbours in
the area (players can swap cells, so any of them can reach any of those cells). Levels are at
least 1; food may lie on the border and next to other food (a player next to two food items
loads the later one in row-major order, so taking the food last to first always works: every
legal layout can be cleared, and ``tests/test_lbf_tasks.py`` clears them by play).

Decoding any tokens (the repair rule)
-------------------------------------
1. Wall token ``t``: ``t mod (cells + 1)``, ``0`` none, else cell ``t - 1``; duplicates dropped.
2. Object token ``t``: ``u = (t - 1) mod (cells * L)``, cell ``u // L``, level ``u mod L + 1``.
3. Players in agent order, then food in token order, each on its cell if legal there, else on
   the first legal cell after it in row-major order (wrapping around). Legal for player 0:
   free and not taken; for the other players: in player 0's area and not taken; for food:
   free, in the area, no player, and every player and every food placed so far (this one too)
   keeps the property above. Player levels are clamped to ``[1, max_player_level]``.
4. If some object has no legal cell at all, the walls next to the area it had are removed (all
   walls when none is next to it) and decoding starts again from step 3. With no walls every
   object fits (the constructor checks a bound that guarantees it), so this ends.
5. Food levels are clamped to ``[1, min(max_food_level, what its neighbours allow)]`` on the
   final layout.

A legal layout decodes to itself from its own tokens, so ``decode(encode(x)) == x``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import torch

Cell = tuple[int, int]  # (row, col)
Thing = tuple[int, int, int]  # (row, col, level)


@dataclass(frozen=True)
class LBFLayout:
    """One LBF start: walls (sorted), players (agent order), food (sorted by cell)."""

    walls: tuple[Cell, ...]
    players: tuple[Thing, ...]
    foods: tuple[Thing, ...]


class LBFTaskSpace:
    """Layouts of an R×C field with ``players`` players, ``foods`` food items and up to
    ``max_walls`` walls, as ``[n, max_walls + players + foods]`` int64 tokens."""

    def __init__(
        self,
        rows: int,
        cols: int,
        players: int,
        foods: int,
        *,
        max_walls: int,
        max_player_level: int = 2,
        max_food_level: int | None = None,
    ) -> None:
        for name, value, low in (("rows", rows, 3), ("cols", cols, 3), ("players", players, 1),
                                 ("foods", foods, 1), ("max_walls", max_walls, 0),
                                 ("max_player_level", max_player_level, 1)):
            _check_int(name, value, low)
        if max_food_level is None:  # as LBFEnv: the three lowest players' top levels
            max_food_level = min(players, 3) * max_player_level
        _check_int("max_food_level", max_food_level, 1)
        cells = rows * cols
        if max_walls + players + foods > cells:
            raise ValueError(f"LBFTaskSpace: {max_walls} walls, {players} players and {foods} "
                             f"food items do not fit on a {rows}x{cols} field")
        # Every object fits on a wall-free field when this holds: a cell off every food's 3x3
        # box, no player, and outside the pockets k food items can cut off (< k² cells) keeps
        # the layout legal when food is put on it.
        if cells < players + 9 * (foods - 1) + (foods - 1) ** 2 + 1:
            raise ValueError(f"LBFTaskSpace: a {rows}x{cols} field is too small for {players} "
                             f"players and {foods} food items")
        self.rows, self.cols = rows, cols
        self.n_players, self.n_foods, self.max_walls = players, foods, max_walls
        self.max_player_level, self.max_food_level = max_player_level, max_food_level
        self.levels = max(max_player_level, max_food_level)
        self.length = max_walls + players + foods
        self.vocab = 1 + cells * self.levels
        self._cells = cells
        w = self._width = cols + 1  # bit r * width + c; the spare column stops rows wrapping
        self._bits = [1 << (r * w + c) for r in range(rows) for c in range(cols)]  # by index
        self._cell_of = [divmod(i, cols) for i in range(cells)]
        self._field = sum(self._bits)
        # Teachers replay tasks: decoding (pure Python, ~50 µs) is worth remembering.
        self._decoded = lru_cache(maxsize=1 << 16)(self._decode_one)
        # The 8 cells around each bit, clockwise from north (off the field: no bit).
        self._ring = {b.bit_length() - 1: [x & self._field for x in (
            b >> w, b >> (w - 1), b << 1, b << (w + 1), b << w, b << (w - 1), b >> 1,
            b >> (w + 1))] for b in self._bits}

    # --- the TaskSpace protocol -------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` random layouts: a uniform number of walls in ``[0, max_walls]`` on random
        cells, players and food on other random cells, uniform levels; then repaired."""
        dev, w, objects = generator.device, self.max_walls, self.n_players + self.n_foods
        cells = torch.rand(n, self._cells, generator=generator, device=dev).argsort(1).cpu()
        count = torch.randint(0, w + 1, (n, 1), generator=generator, device=dev).cpu()
        walls = torch.where(torch.arange(w) < count, cells[:, :w] + 1, 0)
        top = torch.tensor([self.max_player_level] * self.n_players
                           + [self.max_food_level] * self.n_foods)
        level = (torch.rand(n, objects, generator=generator, device=dev).cpu() * top).long()
        things = 1 + cells[:, w:w + objects] * self.levels + level
        return self.canonical(torch.cat([walls, things], dim=1))

    def encode(self, layouts: Sequence[LBFLayout]) -> torch.Tensor:
        """The canonical tokens ``[n, length]`` of ``layouts`` (``ValueError`` if one does not
        fit the space: too many walls, other counts, cells or levels out of range)."""
        rows = [self._encode_one(x, i) for i, x in enumerate(layouts)]
        return torch.tensor(rows, dtype=torch.long).view(len(rows), self.length)

    def decode(self, tokens: torch.Tensor) -> list[LBFLayout]:
        """The legal layout of every row of ``tokens [n, length]``, by the module's repair rule
        (any integers; never raises for their values)."""
        if (not isinstance(tokens, torch.Tensor) or tokens.dim() != 2
                or tokens.shape[1] != self.length or tokens.dtype.is_floating_point
                or tokens.dtype.is_complex or tokens.dtype == torch.bool):
            got = (f"{tokens.dtype} {list(tokens.shape)}" if isinstance(tokens, torch.Tensor)
                   else type(tokens).__name__)
            raise ValueError(f"LBFTaskSpace: tokens must be an integer tensor [n, {self.length}], "
                             f"got {got}")
        return [self._decoded(tuple(row)) for row in tokens.tolist()]

    def mutate(self, tokens: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """ACCEL's edits: ``k`` times, one random edit — toggle a wall on a random cell (half the
        edits), move a player or a food item to a random cell (30%), or give one of them a
        random level (20%) — kept only if the layout stays legal. So at most ``k`` layout
        elements (a wall, a player, a food item) differ from the input's decoded layout: at
        most ``k`` tokens, counting walls and food as sets (canonical order sorts them, so an
        added wall shifts the positions of the walls after it). Canonical tokens."""
        _check_int("k", k, 0)
        layouts = self.decode(tokens)
        draws = torch.rand(len(layouts), k, 4, generator=generator,
                           device=generator.device).tolist()
        out = []
        for x, edits in zip(layouts, draws, strict=True):
            for u in edits:
                y = self._edit(x, u)
                if y != x and self.legal(y):
                    x = y
            out.append(x)
        return self.encode(out)

    def canonical(self, tokens: torch.Tensor) -> torch.Tensor:
        """``encode(decode(tokens))``."""
        return self.encode(self.decode(tokens))

    def shuffle(self, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``canonical(tokens)`` with the wall tokens (zeros included) in a random order among
        the wall slots and the food tokens among the food slots; players keep agent order. A
        legal layout decodes the same from its food in any order, so
        ``canonical(shuffle(t)) == canonical(t)``."""
        t = self.canonical(tokens)
        w, first_food = self.max_walls, self.max_walls + self.n_players
        order = [torch.rand(len(t), k, generator=generator, device=generator.device)
                 .argsort(1).cpu() for k in (w, self.n_foods)]
        return torch.cat([t[:, :w].gather(1, order[0]), t[:, w:first_food],
                          t[:, first_food:].gather(1, order[1])], dim=1)

    # --- beyond the protocol -------------------------------------------------------------
    def legal(self, layout: LBFLayout) -> bool:
        """Whether ``layout`` is legal (see the module) and fits the space."""
        try:
            tokens = self._encode_one(layout, 0)
        except ValueError:
            return False
        return self._decoded(tuple(tokens)) == layout

    # --- encoding and decoding one layout ----------------------------------------------------
    def _encode_one(self, x: LBFLayout, i: int) -> list[int]:
        if len(x.walls) > self.max_walls or len(x.players) != self.n_players \
                or len(x.foods) != self.n_foods:
            raise ValueError(f"LBFTaskSpace: layout {i} has {len(x.walls)} walls, "
                             f"{len(x.players)} players and {len(x.foods)} food items; the "
                             f"space holds up to {self.max_walls} walls, {self.n_players} "
                             f"players and {self.n_foods} food items")
        walls = sorted(self._index(cell, i) for cell in x.walls)
        players = [self._thing(p, self.max_player_level, i) for p in x.players]
        foods = sorted(self._thing(f, self.max_food_level, i) for f in x.foods)
        return [w + 1 for w in walls] + [0] * (self.max_walls - len(walls)) + players + foods

    def _index(self, cell: Sequence[int], i: int) -> int:
        r, c = cell
        if not (0 <= r < self.rows and 0 <= c < self.cols):
            raise ValueError(f"LBFTaskSpace: layout {i}: cell {tuple(cell)} is off the "
                             f"{self.rows}x{self.cols} field")
        return r * self.cols + c

    def _thing(self, thing: Sequence[int], top: int, i: int) -> int:
        r, c, level = thing
        if not 1 <= level <= top:
            raise ValueError(f"LBFTaskSpace: layout {i}: level {level} at {(r, c)} is not in "
                             f"[1, {top}]")
        return 1 + self._index((r, c), i) * self.levels + level - 1

    def _decode_one(self, tokens: tuple[int, ...]) -> LBFLayout:
        w, n = self.max_walls, self.n_players
        walls = {t % (self._cells + 1) - 1 for t in tokens[:w]} - {-1}
        things = [divmod((t - 1) % (self._cells * self.levels), self.levels)
                  for t in tokens[w:]]
        while True:
            placed = self._place(walls, things[:n], things[n:])
            if isinstance(placed, LBFLayout):
                return placed
            if not walls:
                raise RuntimeError("LBFTaskSpace: objects do not fit a field without walls "
                                   "(the constructor's size bound is wrong)")
            touching = {cell for cell in walls if self._near(self._bits[cell]) & placed}
            walls = walls - touching if touching else set()

    def _place(self, walls: set[int], players: list[tuple[int, int]],
               foods: list[tuple[int, int]]) -> LBFLayout | int:
        """The layout of step 3 of the repair rule, or the area of the object that found no
        legal cell."""
        free = self._field
        for cell in walls:
            free &= ~self._bits[cell]
        taken = area = 0
        player_cells, levels = [], []
        for j, (cell, level) in enumerate(players):
            found = next(self._cells_from(cell, area & ~taken if j else free & ~taken), 0)
            if not found:
                return area
            taken |= found
            if j == 0:
                area = self._fill(found, free)
            player_cells.append(found)
            levels.append(min(level + 1, self.max_player_level))
        seed, food_bits = player_cells[0], 0
        food_cells: list[int] = []
        food_levels = []
        for cell, level in foods:
            for found in self._cells_from(cell, area & ~taken):
                grown = self._keeps_legal(found, food_cells, free & ~food_bits, area, seed,
                                          taken)
                if grown:
                    area, food_bits = grown, food_bits | found
                    food_cells.append(found)
                    food_levels.append(level + 1)
                    break
            else:
                return area
        top = sorted(levels, reverse=True)
        foods_out = []
        for bit, level in zip(food_cells, food_levels, strict=True):
            room = (self._near(bit) & area).bit_count()
            cap = min(self.max_food_level, sum(top[:room]))
            foods_out.append((*self._cell(bit), min(level, cap)))
        return LBFLayout(
            walls=tuple(self._cell_of[cell] for cell in sorted(walls)),
            players=tuple((*self._cell(b), v) for b, v in zip(player_cells, levels, strict=True)),
            foods=tuple(sorted(foods_out)),
        )

    def _keeps_legal(self, bit: int, food_cells: list[int], open_: int, area: int, seed: int,
                     players: int) -> int:
        """The area with food added on ``bit`` (a cell of ``area``, no player) if every player
        and food stays legal, else 0."""
        rest = area & ~bit
        if not self._keeps_connected(bit, rest):
            rest = self._fill(seed, open_ & ~bit)
            if players & ~rest:
                return 0
        near = self._near
        if not near(bit) & rest or any(not near(f) & rest for f in food_cells):
            return 0
        return rest

    def _keeps_connected(self, bit: int, rest: int) -> bool:
        """Whether the cells of ``rest`` next to ``bit`` are connected around it (then taking
        ``bit`` out of a connected area leaves it connected: no flood fill needed)."""
        on = [bool(x & rest) for x in self._ring[bit.bit_length() - 1]]
        if all(on):
            return True
        start = on.index(False)
        arcs, touching = 0, False  # runs of cells around, and whether the run holds N/S/W/E
        for k in range(start + 1, start + 9):
            if on[k % 8]:
                touching |= k % 2 == 0
            else:
                arcs += touching
                touching = False
        return arcs <= 1

    def _edit(self, x: LBFLayout, u: list[float]) -> LBFLayout:
        """One of mutate's edits, chosen and placed by the uniforms ``u``."""
        kind, which, where, level = u
        cell = divmod(int(where * self._cells), self.cols)
        things = (*x.players, *x.foods)
        j = int(which * len(things))
        is_player = j < self.n_players
        thing = things[j]
        if kind < 0.5:  # toggle a wall
            walls = set(x.walls) ^ {cell}
            if len(walls) > self.max_walls:
                return x
            return LBFLayout(tuple(sorted(walls)), x.players, x.foods)
        if kind < 0.8:  # move a player or a food item
            thing = (*cell, thing[2])
        else:  # a new level
            top = self.max_player_level if is_player else self.max_food_level
            thing = (thing[0], thing[1], 1 + int(level * top))
        if is_player:
            players = list(x.players)
            players[j] = thing
            return LBFLayout(x.walls, tuple(players), x.foods)
        foods = list(x.foods)
        foods[j - self.n_players] = thing
        return LBFLayout(x.walls, x.players, tuple(sorted(foods)))

    # --- cells as bits of a Python integer ------------------------------------------------------
    def _cell(self, bit: int) -> Cell:
        return divmod(bit.bit_length() - 1, self._width)

    def _near(self, x: int) -> int:
        """The cells orthogonally next to the cells of ``x``."""
        w = self._width
        return (x << 1 | x >> 1 | x << w | x >> w) & self._field

    def _fill(self, seed: int, open_: int) -> int:
        """The cells of ``open_`` 4-connected to ``seed`` (a cell of ``open_``)."""
        w, x = self._width, seed
        while True:
            grown = (x | x << 1 | x >> 1 | x << w | x >> w) & open_
            if grown == x:
                return x
            x = grown

    def _cells_from(self, index: int, allowed: int) -> Iterator[int]:
        """The cells of ``allowed`` (as bits) in row-major order from cell ``index`` on,
        wrapping around."""
        start = self._bits[index].bit_length() - 1
        high = allowed >> start << start
        for part in (high, allowed ^ high):
            while part:
                low = part & -part
                yield low
                part ^= low


def heldout_tasks(name: str = "lbf:13x13-2p-3f") -> dict[str, LBFLayout]:
    """The named held-out layouts for the field, players and food of the LBF id ``name`` (any
    variant: ``grid-``, sight, ``-coop``), from ``heldout/<R>x<C>-<N>p-<F>f.txt``, each
    checked legal with LBF's default levels.

    File format: ``;`` starts a comment line; ``[name] A=1 B=2`` starts a layout and gives the
    player levels (``A`` is agent 0, ``B`` agent 1, …); then one line per row: ``#`` a wall,
    ``.`` a free cell, a letter a player's start, a digit a food item of that level.
    """
    from marl.envs.lbf import parse_id

    args = parse_id(name.removeprefix("lbf:"))
    (rows, cols), players, foods = args["field_size"], args["players"], args["max_num_food"]
    key = f"{rows}x{cols}-{players}p-{foods}f"
    folder = resources.files("marl.envs.lbf") / "heldout"
    known = sorted(p.name.removesuffix(".txt") for p in folder.iterdir()
                   if p.name.endswith(".txt"))
    if key not in known:
        raise ValueError(f"no held-out LBF layouts for {key} ({name}); there are: "
                         + ", ".join(known))
    space = LBFTaskSpace(rows, cols, players, foods, max_walls=rows * cols - players - foods)
    layouts = _parse_maps((folder / f"{key}.txt").read_text(), rows, cols, f"{key}.txt")
    for title, layout in layouts.items():
        if not space.legal(layout):
            raise ValueError(f"{key}.txt: layout '{title}' is not legal (see "
                             "marl.envs.lbf.tasks)")
    return layouts


def _parse_maps(text: str, rows: int, cols: int, where: str) -> dict[str, LBFLayout]:
    """The layouts of a held-out file (format in :func:`heldout_tasks`)."""
    blocks: list[tuple[int, str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            blocks.append((number, line, []))
        elif not blocks:
            raise ValueError(f"{where}:{number}: a map row before any [name] line")
        else:
            blocks[-1][2].append(line)
    layouts = {}
    for number, header, grid in blocks:
        key, _, levels_text = header[1:].partition("]")
        at = f"{where}:{number} ({key})"
        if key in layouts:
            raise ValueError(f"{at}: the name is used twice")
        if len(grid) != rows or any(len(line) != cols for line in grid):
            raise ValueError(f"{at}: the map must be {rows} rows of {cols} characters")
        levels = dict(item.partition("=")[::2] for item in levels_text.split())
        walls, starts, foods = [], {}, []
        for r, line in enumerate(grid):
            for c, ch in enumerate(line):
                if ch == "#":
                    walls.append((r, c))
                elif ch.isdigit():
                    foods.append((r, c, int(ch)))
                elif ch.isalpha():
                    if ch in starts or ch not in levels:
                        raise ValueError(f"{at}: player {ch} twice, or without a level")
                    starts[ch] = (r, c, int(levels[ch]))
                elif ch != ".":
                    raise ValueError(f"{at}: unknown map character {ch!r}")
        if sorted(starts) != sorted(levels):
            raise ValueError(f"{at}: players {sorted(levels)} need one start each")
        layouts[key] = LBFLayout(tuple(walls), tuple(starts[k] for k in sorted(starts)),
                                 tuple(foods))
    return layouts


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"LBFTaskSpace: {name} must be an integer >= {minimum}, got {value!r}")
