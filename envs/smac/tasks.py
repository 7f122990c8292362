"""Tasks of SMACv2-style generated scenarios: who fights and where each unit starts.

A task fixes what :meth:`GeneratedScenario.draw` otherwise draws per episode: every unit's type
and start. Starts are coarse: the 32 × 32 map is cut into :data:`GRID` × :data:`GRID` cells of
4 × 4 units, cell ``row * GRID + col`` covering ``x in [4 col, 4 col + 4)``,
``y in [4 row, 4 row + 4)``; a unit starts at its cell's centre with SMACv2's ±0.5 jitter.

Tokens (:class:`SMACv2TaskSpace`): one per unit, ``type * CELLS + cell`` (``type`` indexes the
race's three types, :data:`~marl.envs.smac.generated.RACES`), allies then enemies: ``length =
n_agents + n_enemies``, ``vocab = 3 * CELLS = 192``. The units of a team are interchangeable,
so the canonical order sorts the allies by ``(type, cell)`` (= by token) and the enemies
likewise, each team on its own.

Decoding any integers: every token is read modulo ``vocab`` (floor modulo: -1 is the last
token); then a team made only of its race's exception types (Terran: all Medivacs, Zerg: all
Banelings; SMACv2 never draws one, and an all-Medivac side loses at once) is repaired: its
first unit in canonical order (the lowest token) becomes the race's first type (Marine,
Zergling), in its cell.

Held-out tasks (:func:`heldout_tasks`) are hand-designed files under ``heldout/``, one per
scenario, e.g. ``heldout/protoss_5_vs_5.json``: each named task lists every unit as
``[type name, col, row]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import torch

from marl.envs.smac.generated import MAP_SIZE, RACES, GeneratedScenario

GRID = 8  # cells per side
CELL_SIZE = MAP_SIZE / GRID  # map units per cell side
CELLS = GRID * GRID
N_TYPES = 3  # every race has three unit types
P_RETYPE = 0.5  # mutate: an edit retypes a unit with this probability, else moves it
# mutate's moves: to one of the eight neighbouring cells (dcol, drow)
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

Unit = tuple[int, int]  # (type, cell)


@dataclass(frozen=True)
class SMACv2Layout:
    """Every unit's ``(type, cell)``: ``type`` indexes the race's types, ``cell`` is
    ``row * GRID + col``. Each team is kept sorted (its units are interchangeable), so two
    layouts with the same units per team are equal."""

    allies: tuple[Unit, ...]
    enemies: tuple[Unit, ...]

    def __post_init__(self) -> None:
        for team in ("allies", "enemies"):
            units = tuple(sorted((int(t), int(c)) for t, c in getattr(self, team)))
            object.__setattr__(self, team, units)

    @property
    def types(self) -> tuple[int, ...]:
        """Each unit's type, allies then enemies."""
        return tuple(t for t, _ in self.allies + self.enemies)

    @property
    def cells(self) -> tuple[int, ...]:
        """Each unit's cell, allies then enemies."""
        return tuple(c for _, c in self.allies + self.enemies)


def cell_of(col: int, row: int) -> int:
    """The index of the cell in column ``col`` (x) and row ``row`` (y)."""
    return row * GRID + col


class SMACv2TaskSpace:
    """The tasks of ``scenario`` as ``[n, n_agents + n_enemies]`` int64 tokens (module doc).

    ``sample`` draws SMACv2's own distribution (:meth:`GeneratedScenario.draw`: teams with the
    race's weights, the enemies mirroring the allies; reflected or surrounded starts) and
    snaps every start to its cell. ``mutate`` edits distinct units: each edit retypes a unit
    to another type or moves it to one of its eight neighbouring cells (reflected back at
    the map's edge); an edit that leaves a team made only of exception types is undone with
    the rest of that team's edits. Tensors stay on the device they come on (``sample``,
    ``mutate``: the generator's)."""

    def __init__(self, scenario: GeneratedScenario) -> None:
        self.scenario = scenario
        self.n_agents, self.n_enemies = scenario.n_agents, scenario.n_enemies
        self.length = scenario.n_agents + scenario.n_enemies
        self.vocab = N_TYPES * CELLS
        names, _, exceptions = RACES[scenario.race]
        self.type_names = names
        self.banned = torch.tensor([t in exceptions for t in names])  # [N_TYPES]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` tasks drawn as SMACv2 draws its battles, starts snapped to cells."""
        kind, pos = self.scenario.draw(n, generator, generator.device)
        col, row = (pos / CELL_SIZE).long().clamp(0, GRID - 1).unbind(-1)
        return self.canonical(kind * CELLS + row * GRID + col)

    def encode(self, layouts: Sequence[SMACv2Layout]) -> torch.Tensor:
        """The canonical tokens ``[n, length]`` of ``layouts``; ``ValueError`` for a layout
        of another size, a type or cell out of range, or a team of exception types only."""
        rows = []
        for i, layout in enumerate(layouts):
            self.check_layout(layout, f"layout {i}")
            rows.append([t * CELLS + c for t, c in layout.allies + layout.enemies])
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), self.length)

    def decode(self, tokens: torch.Tensor) -> list[SMACv2Layout]:
        """The layout of every row of ``tokens`` (any integers: the module doc's rule)."""
        n = self.n_agents
        layouts = []
        for row in self.canonical(tokens).tolist():
            units = [(v // CELLS, v % CELLS) for v in row]
            layouts.append(SMACv2Layout(tuple(units[:n]), tuple(units[n:])))
        return layouts

    def canonical(self, tokens: torch.Tensor) -> torch.Tensor:
        """``encode(decode(tokens))``, as tensor code: modulo, repair, sort each team."""
        t = self._check_tokens(tokens).remainder(self.vocab)
        n = self.n_agents
        return torch.cat([self._team(t[:, :n]), self._team(t[:, n:])], dim=1)

    def shuffle(self, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``canonical(tokens)`` with the allies in a random order among the ally slots and the
        enemies among the enemy slots."""
        t = self.canonical(tokens)
        n, dev = self.n_agents, t.device
        allies, enemies = (torch.rand(len(t), k, generator=generator, device=dev).argsort(1)
                           for k in (n, self.n_enemies))
        return torch.cat([t[:, :n].gather(1, allies), t[:, n:].gather(1, enemies)], dim=1)

    def mutate(self, tokens: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """Each task of ``canonical(tokens)`` with at most ``k`` units edited (counted as the
        units of a team that are not in the edited team, as multisets), canonical."""
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"mutate: k must be a non-negative integer, got {k!r}")
        t = self.canonical(tokens)
        b, k = t.shape[0], min(k, self.length)
        if b == 0 or k == 0:
            return t
        dev = t.device
        slots = torch.rand(b, self.length, generator=generator, device=dev).argsort(-1)[:, :k]
        unit = t.gather(1, slots)
        kind, cell = unit // CELLS, unit % CELLS
        other = kind + torch.randint(1, N_TYPES, (b, k), generator=generator, device=dev)
        retyped = (other % N_TYPES) * CELLS + cell
        step = torch.tensor(NEIGHBOURS, device=dev)[
            torch.randint(0, len(NEIGHBOURS), (b, k), generator=generator, device=dev)]
        col = _reflect(cell % GRID, step[..., 0])
        row = _reflect(cell // GRID, step[..., 1])
        moved = kind * CELLS + row * GRID + col
        retype = torch.rand(b, k, generator=generator, device=dev) < P_RETYPE
        edited = t.scatter(1, slots, torch.where(retype, retyped, moved))
        n = self.n_agents
        keep = torch.cat([self._illegal(edited[:, :n]).unsqueeze(1).expand(-1, n),
                          self._illegal(edited[:, n:]).unsqueeze(1).expand(-1, self.n_enemies)],
                         dim=1)
        return self.canonical(torch.where(keep, t, edited))

    def placement(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each unit's type ``[n, length]`` and cell centre ``[n, length, 2]`` (x, y) of
        canonical ``tokens``, on their device."""
        cell = tokens % CELLS
        centre = torch.stack([cell % GRID, cell // GRID], dim=-1).float() + 0.5
        return tokens // CELLS, centre * CELL_SIZE

    def _team(self, t: torch.Tensor) -> torch.Tensor:
        """One team's tokens ``[b, k]`` (in range) repaired and sorted."""
        first = t.argmin(-1, keepdim=True)
        repaired = t.scatter(1, first, t.gather(1, first) % CELLS)  # first type, same cell
        return torch.where(self._illegal(t).unsqueeze(1), repaired, t).sort(-1).values

    def _illegal(self, t: torch.Tensor) -> torch.Tensor:
        """``[b]``: whether a team's tokens ``[b, k]`` are exception types only."""
        return self.banned.to(t.device)[t // CELLS].all(-1)

    def _check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.dtype.is_floating_point \
                or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise ValueError(f"tasks must be an integer tensor [n, length={self.length}], got "
                             f"{getattr(tokens, 'dtype', type(tokens).__name__)}")
        if tokens.dim() != 2 or tokens.shape[1] != self.length:
            raise ValueError(f"tasks must have shape [n, length={self.length}] "
                             f"({self.scenario.name}), got {list(tokens.shape)}")
        return tokens.long()

    def check_layout(self, layout: SMACv2Layout, where: str) -> None:
        """``ValueError`` starting with ``where`` unless ``layout`` is a legal task here."""
        if not isinstance(layout, SMACv2Layout):
            raise ValueError(f"{where}: expected a SMACv2Layout, got {type(layout).__name__}")
        for team, units, size in (("allies", layout.allies, self.n_agents),
                                  ("enemies", layout.enemies, self.n_enemies)):
            if len(units) != size:
                raise ValueError(f"{where}: {self.scenario.name} has {size} {team}, the layout "
                                 f"{len(units)}")
            for t, c in units:
                if not (0 <= t < N_TYPES and 0 <= c < CELLS):
                    raise ValueError(f"{where}: {team} unit ({t}, {c}) is out of range: types "
                                     f"are 0..{N_TYPES - 1}, cells 0..{CELLS - 1}")
            if all(bool(self.banned[t]) for t, _ in units):
                kinds = " and ".join(sorted({f"{self.type_names[t]}s" for t, _ in units}))
                raise ValueError(f"{where}: the {team} are only {kinds}; a team needs a unit "
                                 "of another type")


def _reflect(x: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """``x + dx``, or ``x - dx`` where that leaves the grid."""
    moved = x + dx
    return torch.where((moved < 0) | (moved >= GRID), x - dx, moved)


def heldout_tasks(env_id: str) -> dict[str, SMACv2Layout]:
    """The hand-designed held-out tasks of ``env_id`` (e.g. ``smacv2:protoss_5_vs_5``) by
    name, in file order; ``ValueError`` naming the scenarios that have a set."""
    folder = resources.files("marl.envs.smac") / "heldout"
    sets = sorted(f.name.removesuffix(".json") for f in folder.iterdir()
                  if f.name.endswith(".json"))
    match = re.fullmatch(r"smacv2:(\w+?)_(\d+)_vs_(\d+)", env_id)
    name = env_id.removeprefix("smacv2:")
    if match is None or name not in sets:
        raise ValueError(f"no held-out SMACv2 tasks for {env_id!r}; sets exist for "
                         f"{', '.join('smacv2:' + s for s in sets)}")
    space = SMACv2TaskSpace(GeneratedScenario(match[1], int(match[2]), int(match[3])))
    data = json.loads((folder / f"{name}.json").read_text())
    tasks = {}
    for task, spec in data["tasks"].items():
        where = f"heldout/{name}.json, task {task!r}"
        teams = []
        for team in ("allies", "enemies"):
            units = []
            for type_name, col, row in spec[team]:
                if type_name not in space.type_names:
                    raise ValueError(f"{where}: unknown {match[1]} type {type_name!r}; one of "
                                     f"{list(space.type_names)}")
                if not (0 <= col < GRID and 0 <= row < GRID):
                    raise ValueError(f"{where}: cell ({col}, {row}) is off the {GRID} × {GRID} "
                                     "grid")
                units.append((space.type_names.index(type_name), cell_of(col, row)))
            teams.append(tuple(units))
        layout = SMACv2Layout(*teams)
        space.check_layout(layout, where)
        tasks[task] = layout
    return tasks
