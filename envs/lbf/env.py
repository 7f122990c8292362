"""Native batched Level-Based Foraging: the rules of ``lbforaging`` 2.0.0 as tensor code.

Every function here works on all copies and all agents at once; the only Python loop is over
the food items while spawning (a constant of the configuration, never over copies or agents).
Tasks (``set_tasks``) are decoded in Python once, when they are set; starting them is tensor
code. The card (agents, shapes, arguments, walls, tasks, differences from ``lbforaging``) is in
``marl.envs.lbf``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn.functional import pad

from marl.batched_env import BatchedEnv, put_state, state_on_device
from marl.envs.lbf.tasks import LBFLayout, LBFTaskSpace
from marl.spec import EnvSpec, Obs, Step

ACTION_NAMES = ("NONE", "NORTH", "SOUTH", "WEST", "EAST", "LOAD")
_NO_WALLS = torch.zeros(0, 0, 0, dtype=torch.long)  # a state made without: set_state fills in
NONE, LOAD = 0, 5
# (row, col) displacement of each action; NONE and LOAD stay.
_MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))


@dataclass
class LBFState:
    """Simulation state of B copies (N players, F food slots); all int64, copy dimension first.

    The food still on the field comes first, in row-major order of its cells (the order
    ``lbforaging`` lists visible food in); the remaining slots (eaten or never spawned) hold
    level 0 at position (-1, -1). Players may share a cell, as in lbforaging. A state made
    without walls (e.g. from lbforaging) holds an empty ``walls``; ``LBFEnv.set_state`` gives
    it the environment's fixed walls.
    """

    player_pos: torch.Tensor  # [B, N, 2] (row, col)
    player_level: torch.Tensor  # [B, N]
    food_pos: torch.Tensor  # [B, F, 2] (row, col)
    food_level: torch.Tensor  # [B, F]
    food_spawned: torch.Tensor  # [B] sum of the food levels placed at reset
    step: torch.Tensor  # [B] steps taken in the current episode
    walls: torch.Tensor = field(default_factory=lambda: _NO_WALLS)  # [B, R, C], 1: a wall


def _columns(n_food: int, n_players: int, per_player: int, full_view: bool) -> torch.Tensor:
    """For each column of the state (``3F + 3N``: each food's row, col, level, then each
    player's) and, for a full view, of every agent's observation after it (``N`` blocks of
    ``3F + per_player * N``: the food, then the players, the viewer first): the column of
    ``[food (row, col) ×F, food level ×F, player (row, col) ×N, player level ×N]`` it copies.
    One ``index_select`` of that row builds both (on a CPU in about half the time of the four
    matrix products with 0/1 matrices that built them before)."""
    f, n = n_food, n_players
    food_pos, food_level, player_pos, player_level = 0, 2 * f, 3 * f, 3 * f + 2 * n

    def food() -> list[int]:
        return [c for k in range(f) for c in (food_pos + 2 * k, food_pos + 2 * k + 1,
                                              food_level + k)]

    def player(j: int, with_level: bool) -> list[int]:
        return [player_pos + 2 * j, player_pos + 2 * j + 1] + ([player_level + j] * with_level)

    columns = food() + [c for j in range(n) for c in player(j, True)]
    for i in range(n if full_view else 0):  # agent i sees itself first, then the others
        columns += food()
        for j in [i] + [j for j in range(n) if j != i]:
            columns += player(j, per_player == 3)
    return torch.tensor(columns)


def _compact(mask: torch.Tensor, values: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Move the rows of ``values [..., K, C]`` where ``mask [..., K]`` to the front, in order,
    and fill the rest with ``fill [C]`` (how lbforaging lists the things an agent sees)."""
    k, c = values.shape[-2:]
    slot = torch.where(mask, mask.cumsum(-1) - 1, k)
    out = fill.expand(*mask.shape, c).clone()
    out = torch.cat([out, out[..., :1, :]], dim=-2)  # slot k swallows what is not seen
    out.scatter_(-2, slot.unsqueeze(-1).expand(*slot.shape, c), values)
    return out[..., :k, :]


class LBFEnv(BatchedEnv[LBFState]):
    """Level-Based Foraging over ``num_envs`` copies; arguments as ``lbforaging.ForagingEnv``."""

    _left_eager = ("_eat",)  # the meals' copy count changes from step to step

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        *,
        players: int = 2,
        field_size: int | tuple[int, int] = 8,
        max_num_food: int = 3,
        sight: int | None = None,
        min_player_level: int = 1,
        max_player_level: int = 2,
        min_food_level: int = 1,
        max_food_level: int | None = None,
        max_episode_steps: int = 50,
        force_coop: bool = False,
        normalize_reward: bool = True,
        grid_observation: bool = False,
        observe_agent_levels: bool = True,
        penalty: float = 0.0,
        walls: Sequence[Sequence[int]] = (),
        max_walls: int | None = None,
        validate: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(num_envs, device, validate=validate, seed=seed)
        rows, cols = (field_size, field_size) if isinstance(field_size, int) else field_size
        _check_int("players", players, 1)
        _check_int("field_size", rows, 3)
        _check_int("field_size", cols, 3)
        _check_int("max_num_food", max_num_food, 1)
        _check_int("min_player_level", min_player_level, 0)
        _check_int("max_player_level", max_player_level, min_player_level)
        _check_int("min_food_level", min_food_level, 0)
        _check_int("max_episode_steps", max_episode_steps, 1)
        if max_food_level is not None:
            _check_int("max_food_level", max_food_level, min_food_level)
        if players > rows * cols:
            raise ValueError(f"players={players} do not fit on a {rows}x{cols} field")
        sight = max(rows, cols) if sight is None else sight
        _check_int("sight", sight, 1)
        if not (isinstance(penalty, (int, float)) and not isinstance(penalty, bool)
                and math.isfinite(penalty)):
            raise ValueError(f"LBF: penalty must be a finite number, got {penalty!r}")
        for name, flag in (("normalize_reward", normalize_reward),
                           ("observe_agent_levels", observe_agent_levels)):
            if not isinstance(flag, bool):
                raise ValueError(f"LBF: {name} must be true or false, got {flag!r}")

        self.n_players, self.n_food = players, max_num_food
        self.rows, self.cols, self.sight = rows, cols, sight
        self.min_player_level, self.max_player_level = min_player_level, max_player_level
        self.min_food_level, self.max_food_level = min_food_level, max_food_level
        self.max_episode_steps = max_episode_steps
        self.force_coop, self.normalize_reward = force_coop, normalize_reward
        self.grid_observation, self.observe_agent_levels = grid_observation, observe_agent_levels
        self.penalty = float(penalty)

        per_player = 3 if observe_agent_levels else 2
        window = 2 * sight + 1
        obs_shape = (
            (3, window, window) if grid_observation else (3 * max_num_food + per_player * players,)
        )
        self.spec = EnvSpec(
            n_agents=players,
            obs_shape=obs_shape,
            state_shape=(3 * max_num_food + 3 * players,),
            n_actions=len(ACTION_NAMES),
            episode_limit=max_episode_steps,
            agent_names=tuple(f"agent_{i}" for i in range(players)),
            action_names=ACTION_NAMES,
        )

        dev = self.device
        self._moves = torch.tensor(_MOVES, device=dev)
        self._missing = torch.tensor([-1, -1, 0], device=dev)
        self._last_cell = torch.tensor([rows - 1, cols - 1], device=dev)
        self._full_view = sight >= max(rows, cols) - 1  # every window is the whole field
        # Row i lists the players in the order agent i observes them: itself, then the others.
        order = [[i] + [j for j in range(players) if j != i] for i in range(players)]
        self._view_order = torch.tensor(order, device=dev)
        # the state (and a full view's observations) as columns of the flat state: _columns
        columns = _columns(max_num_food, players, per_player,
                           self._full_view and not grid_observation).to(dev)
        self._state_columns = columns[:self.spec.state_shape[0]]
        self._view_columns = columns[self.spec.state_shape[0]:]
        self._later = torch.ones(players, players, dtype=torch.bool, device=dev).triu(1)
        # Cells of a field padded by one on each side, numbered row-major, so that the four
        # neighbours of any cell on the field are cell ± 1 and cell ± width.
        self._width = cols + 2
        padded = torch.zeros(rows + 2, cols + 2, dtype=torch.bool, device=dev)
        padded[1:-1, 1:-1] = True
        self._on_field = padded.flatten()
        self._slot_ids = torch.arange(1, max_num_food + 1, dtype=torch.int16, device=dev)
        self._ones = torch.ones(1, 1, dtype=torch.int16, device=dev)
        # scatter_ from a tensor: ~2.5x faster on a CPU than from the scalar 0
        self._zeros = torch.zeros(1, 1, dtype=torch.int16, device=dev)
        self._grids: dict[tuple[int, int], torch.Tensor] = {}  # _blank_grid's
        # (state, _around, _nearby) of the state the last _step returned, for its
        # observation: the cells around the players and what lies on them, less the food
        # eaten, are those the step looked at
        self._looked: tuple[LBFState, torch.Tensor, torch.Tensor] | None = None
        self._neighbours = torch.tensor([-self._width, self._width, -1, 1], device=dev)  # N S W E
        # The same on the field itself (row-major cells r * cols + c), for the walls.
        self._flat_neighbours = torch.tensor([-cols, cols, -1, 1], device=dev)
        self._last_flat = rows * cols - 1
        # blocks[i, j]: food on cell i keeps food off cell j (3x3 box, or 2 cells along a line).
        every = torch.arange(rows * cols, device=dev)
        r, c = every // cols, every % cols
        dr, dc = (r[:, None] - r[None]).abs(), (c[:, None] - c[None]).abs()
        blocks = ((dr <= 1) & (dc <= 1)) | ((dr == 0) & (dc <= 2)) | ((dc == 0) & (dr <= 2))
        border = (r == 0) | (r == rows - 1) | (c == 0) | (c == cols - 1)
        # (row, col) of every cell, and (-1, -1) after them: the position of no food.
        self._cell_pos = torch.cat([torch.stack([r, c], dim=-1), r.new_full((1, 2), -1)])
        self._no_cell = rows * cols  # its row in _cell_pos: (-1, -1)
        self._wall_grid = _wall_grid(walls, rows, cols).to(dev)  # the fixed walls, 0/1
        self._wall_cells = self._wall_grid.flatten().bool()
        self._fixed_walls = bool(self._wall_cells.any())
        self._no_food = border | self._wall_cells  # lbforaging keeps food off the border
        # Spawning draws among the cells open to players and among those open to food (food
        # slots), numbered apart: _player_cells and _food_cells map the numbers to cells.
        # _blocks[i]: the slots food in slot i keeps food off (the last row: no food placed);
        # the slot past the last, _food_slot of a cell food can't take, is always blocked.
        self._player_cells = (~self._wall_cells).nonzero().squeeze(1)
        self._food_cells = (~self._no_food).nonzero().squeeze(1)
        slots = len(self._food_cells)
        self._food_slot = torch.full((rows * cols,), slots, device=dev)
        self._food_slot[self._food_cells] = torch.arange(slots, device=dev)
        blocks = blocks[self._food_cells][:, self._food_cells]
        self._blocks = torch.cat([blocks, blocks.new_zeros(1, slots)])
        if self._fixed_walls and int((~self._no_food).sum()) <= players:
            raise ValueError(f"LBF: walls leave {int((~self._no_food).sum())} free cells off the "
                             f"border; {players} players need at least {players + 1} (one "
                             "for food)")
        # Per-copy walls exist once walls are fixed or a task brings them; until then the
        # observation skips them (they are all 0).
        self._walled = self._fixed_walls
        if max_walls is not None:
            _check_int("max_walls", max_walls, 0)
        self.max_walls = rows * cols // 4 if max_walls is None else max_walls
        self._task_space: LBFTaskSpace | None = None
        self._tasked: torch.Tensor | None = None  # [B] bool: the copy has a task
        self._task_tokens = torch.zeros(0, dtype=torch.long)  # [B, L] as given
        self._task_start: LBFState | None = None  # [B, ...] the first state of each task
        self._task_obs: Obs | None = None  # [B, ...] and its observation

    # --- spawning --------------------------------------------------------------------------
    def _spawn(self, n: int) -> LBFState:
        g, dev = self.rng, self.device
        level = torch.randint(
            self.min_player_level,
            self.max_player_level + 1,
            (n, self.n_players),
            generator=g,
            device=dev,
        )
        # Players on distinct open cells, drawn in turn, each uniform among those left: an
        # index among the cells left, moved past the ones taken (in ascending order).
        open_cells = len(self._player_cells)
        taken = torch.empty(n, 0, dtype=torch.long, device=dev)
        picked = torch.empty(n, self.n_players, dtype=torch.long, device=dev)
        for p in range(self.n_players):
            index = (torch.rand(n, generator=g, device=dev) * (open_cells - p)).long()
            for j in range(p):
                index += index >= taken[:, j]
            picked[:, p] = index
            taken = torch.cat([taken, index.unsqueeze(1)], dim=1).sort(dim=1).values
        picked = self._player_cells[picked]

        if self.max_food_level is None:  # capped by the three lowest player levels
            hi = level.sort(dim=1).values[:, :3].sum(1)
        else:
            hi = torch.full((n,), self.max_food_level, device=dev)
        lo = hi if self.force_coop else torch.full_like(hi, self.min_food_level)

        # Each food lands uniformly on a cell its rules allow: lbforaging's rejection sampling.
        slots = len(self._food_cells)
        blocked = torch.zeros(n, slots + 1, dtype=torch.bool, device=dev)
        blocked[:, slots] = True
        blocked.scatter_(1, self._food_slot[picked], True)
        food_cell = torch.zeros(n, self.n_food, dtype=torch.long, device=dev)
        food_level = torch.zeros(n, self.n_food, dtype=torch.long, device=dev)
        for k in range(self.n_food):
            slot, placed = self._uniform_slot(~blocked)
            draw = torch.rand(n, generator=g, device=dev)
            food_cell[:, k] = self._food_cells[slot]
            food_level[:, k] = torch.where(placed, lo + (draw * (hi - lo + 1)).long(), 0)
            blocked[:, :slots] |= self._blocks.index_select(0, torch.where(placed, slot, slots))

        key = torch.where(food_level > 0, food_cell, self._no_cell)
        key, order = key.sort(dim=1)
        return LBFState(
            player_pos=self._cell_pos[picked],
            player_level=level,
            food_pos=self._cell_pos[key],
            food_level=food_level.gather(1, order),
            food_spawned=food_level.sum(1),
            step=torch.zeros(n, dtype=torch.long, device=dev),
            walls=self._wall_grid.expand(n, -1, -1).clone(),
        )

    def _uniform_slot(self, free: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A slot of each copy drawn uniformly among its ``free [n, slots + 1]`` ones (by
        inverse CDF: one number per copy, where a score per slot and a max would draw one per
        slot), and whether the copy had any; a copy with none gets slot 0."""
        count = free.cumsum(1, dtype=torch.int32)
        total = count[:, -1]
        draw = torch.rand(free.shape[0], generator=self.rng, device=self.device) * total
        slot = torch.searchsorted(count, draw.to(torch.int32).unsqueeze(1), right=True)
        placed = total > 0
        return torch.where(placed, slot.squeeze(1), 0), placed

    # --- tasks -----------------------------------------------------------------------------
    @property
    def task_space(self) -> LBFTaskSpace:
        """Layouts of this field, players and food with up to ``max_walls`` walls and this
        environment's top player and food levels."""
        if self._task_space is None:
            self._task_space = LBFTaskSpace(
                self.rows, self.cols, self.n_players, self.n_food, max_walls=self.max_walls,
                max_player_level=max(self.max_player_level, 1),
                max_food_level=max(self._top_food_level(), 1),
            )
        return self._task_space

    def set_tasks(self, tokens: torch.Tensor | None, *,
                  ids: Sequence[int] | torch.Tensor | None = None) -> None:
        """Copy ``ids[i]`` (copy ``i`` when ``ids`` is None) plays the task ``tokens[i]``
        (``[len(ids), task_space.length]``, any integers: ``task_space.decode`` repairs them)
        from its next reset on, autoresets included, until given another; ``tokens=None``
        gives those copies random layouts again. The current episodes play on. Only rows
        that differ from a copy's current task are decoded, so setting every copy's task
        after each step (a teacher's queue) costs only the new ones."""
        where = _copy_ids(ids, self.num_envs).to(self.device)
        if tokens is None:
            if self._tasked is not None:
                self._tasked[where] = False
                if not self._tasked.any():
                    self._tasked = self._task_start = self._task_obs = None
            return
        space = self.task_space
        if (not isinstance(tokens, torch.Tensor) or tuple(tokens.shape) != (len(where),
                                                                             space.length)
                or tokens.dtype.is_floating_point or tokens.dtype.is_complex
                or tokens.dtype == torch.bool):
            got = (f"{tokens.dtype} {list(tokens.shape)}" if isinstance(tokens, torch.Tensor)
                   else type(tokens).__name__)
            raise ValueError(f"LBF set_tasks: tokens must be an integer tensor [{len(where)}, "
                             f"{space.length}] (one task per copy set), got {got}")
        tokens = tokens.to(self.device, torch.long)
        if self._tasked is None or self._task_start is None or self._task_obs is None:
            b, dev = self.num_envs, self.device
            self._tasked = torch.zeros(b, dtype=torch.bool, device=dev)
            self._task_tokens = torch.zeros(b, space.length, dtype=torch.long, device=dev)
            none = self._layout_states([])  # no copy: the shapes
            self._task_start = dataclasses.replace(none, **{
                f.name: getattr(none, f.name).new_zeros((b, *getattr(none, f.name).shape[1:]))
                for f in dataclasses.fields(none)})
            self._task_obs = Obs(
                torch.zeros(b, self.n_players, *self.spec.obs_shape, device=dev),
                torch.zeros(b, *self.spec.state_shape, device=dev),
                torch.zeros(b, self.n_players, self.spec.n_actions, dtype=torch.bool, device=dev),
            )
        new = ~(self._tasked[where] & (tokens == self._task_tokens[where]).all(1))
        if not bool(new.any()):
            return
        where, tokens = where[new], tokens[new]
        layouts = space.decode(tokens)
        self._walled = self._walled or any(x.walls for x in layouts)
        start = self._layout_states(layouts)
        put_state(self._task_start, where, start)
        first = self._observe(start)
        for name in ("obs", "state", "avail"):
            getattr(self._task_obs, name).index_copy_(0, where, getattr(first, name))
        self._task_tokens.index_copy_(0, where, tokens)
        self._tasked[where] = True

    def _layout_states(self, layouts: Sequence[LBFLayout]) -> LBFState:
        """The first states of ``layouts`` (one copy each)."""
        n, f = len(layouts), self.n_food
        walls = torch.zeros(n, self.rows * self.cols, dtype=torch.long)
        walls[[i for i, x in enumerate(layouts) for _ in x.walls],
              [r * self.cols + c for x in layouts for r, c in x.walls]] = 1
        food_level = [[v for *_, v in x.foods] + [0] * (f - len(x.foods)) for x in layouts]

        def t(values: Any) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.long, device=self.device)

        m = self.n_players
        return LBFState(
            player_pos=t([[(r, c) for r, c, _ in x.players] for x in layouts]).view(n, m, 2),
            player_level=t([[v for *_, v in x.players] for x in layouts]).view(n, m),
            food_pos=t([[(r, c) for r, c, _ in x.foods] + [(-1, -1)] * (f - len(x.foods))
                        for x in layouts]).view(n, f, 2),
            food_level=t(food_level).view(n, f),
            food_spawned=t([sum(v) for v in food_level]).view(n),
            step=torch.zeros(n, dtype=torch.long, device=self.device),
            walls=walls.view(n, self.rows, self.cols).to(self.device),
        )

    def _task_starts(self, ids: torch.Tensor) -> tuple[LBFState, Obs]:
        """The first states and observations of the tasks of copies ``ids``."""
        start, obs = self._task_start, self._task_obs
        if start is None or obs is None:
            raise RuntimeError("LBF: no copy has a task")
        fields = {f.name: getattr(start, f.name)[ids] for f in dataclasses.fields(start)}
        return dataclasses.replace(start, **fields), Obs(obs.obs[ids], obs.state[ids],
                                                          obs.avail[ids])

    def _start_tasks(self, ready: torch.Tensor, obs: Obs) -> Obs:
        """Copies with a task where ``ready [B]``: at the start of it; ``obs`` with their first
        observations (the next step's)."""
        if self._tasked is not None:
            ids = (ready & self._tasked).nonzero().squeeze(1)
            if ids.numel():
                start, first = self._task_starts(ids)
                put_state(super().state, ids, start)
                obs = Obs(obs.obs.index_copy(0, ids, first.obs),
                          obs.state.index_copy(0, ids, first.state),
                          obs.avail.index_copy(0, ids, first.avail))
        self._last_obs = obs
        return obs

    # --- the protocol, with tasks and walls -------------------------------------------------
    def reset(self, *, seed: int | None = None) -> Obs:
        """Random layouts, or each copy's task (``set_tasks``)."""
        obs = super().reset(seed=seed)
        if self._tasked is None:
            return obs
        return self._start_tasks(self._tasked, obs)

    def step(self, actions: torch.Tensor) -> Step:
        """The base class's step; a finished copy with a task starts it again (the base class
        hands it a random episode first)."""
        out = super().step(actions)
        if self._tasked is not None and self.autoreset:
            out.obs = self._start_tasks(out.done, out.obs)
        return out

    def set_state(self, state: LBFState) -> Obs:
        """Replace the simulation state; one without walls (e.g. from lbforaging) gets the
        fixed walls."""
        if state.walls.numel() == 0:
            walls = self._wall_grid.expand(state.step.shape[0], -1, -1).clone()
            state = dataclasses.replace(state, walls=walls)
        elif not self._walled:
            self._walled = bool(state.walls.any())
        return super().set_state(state)

    def state_dict(self) -> dict[str, Any]:
        """The base class's, and each copy's task (``tasks``)."""
        sd = super().state_dict()
        sd["tasks"] = (None if self._tasked is None else
                       {"tokens": self._task_tokens.clone(), "has_task": self._tasked.clone()})
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`; one saved before walls existed has none."""
        sd = state_on_device(sd, self.device)
        pool = sd["pool"]
        sd = {**sd, "state": self._with_walls(sd["state"]),
              "pool": None if pool is None else (self._with_walls(pool[0]), pool[1])}
        super().load_state_dict(sd)
        self._walled = self._walled or bool(super().state.walls.any())
        self._tasked = self._task_start = self._task_obs = None
        tasks = sd.get("tasks")
        if tasks is not None:
            ids = tasks["has_task"].nonzero().squeeze(1)
            self.set_tasks(tasks["tokens"][ids], ids=ids)

    def _with_walls(self, fields: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "walls" in fields:
            return fields
        walls = self._wall_grid.expand(fields["step"].shape[0], -1, -1).clone()
        return {**fields, "walls": walls}

    # --- dynamics --------------------------------------------------------------------------
    def _cell(self, pos: torch.Tensor) -> torch.Tensor:
        """Padded row-major cell numbers of ``pos [..., 2]`` (no integer matrix product: CUDA
        has none)."""
        return pos[..., 0] * self._width + pos[..., 1] + (self._width + 1)

    def _field_cell(self, pos: torch.Tensor) -> torch.Tensor:
        """Row-major cell numbers ``r * cols + c`` of ``pos [..., 2]`` on the field itself."""
        return pos[..., 0] * self.cols + pos[..., 1]

    def _blank_grid(self, b: int, off_field: int = 0) -> torch.Tensor:
        """``[b, cells]`` int16 for one lookup, 0 on the field and ``off_field`` beyond it, to
        be left so again by its user: kept from call to call, since a fresh one costs more
        (page faults) than the lookup."""
        grid = self._grids.get((b, off_field))
        if grid is None:
            blank = torch.where(self._on_field, 0, off_field).to(torch.int16)
            grid = self._grids[b, off_field] = blank.expand(b, -1).clone()
        return grid

    def _alone(self, cell: torch.Tensor) -> torch.Tensor:
        """``[B, N]``: whether no other player claims the same cell (``cell [B, N]``)."""
        if cell.shape[1] == 2:  # one comparison: ~7x faster than the grid on a CPU
            return (cell[:, 0] != cell[:, 1]).unsqueeze(1).expand(-1, 2)
        grid = self._blank_grid(cell.shape[0])
        grid.scatter_add_(1, cell, self._ones.expand(cell.shape))
        alone = grid.gather(1, cell) == 1
        grid.scatter_(1, cell, self._zeros.expand(cell.shape))
        return alone

    def _around(self, pos: torch.Tensor) -> torch.Tensor:
        """``[B, N, 4]``: the padded cell numbers north, south, west and east of ``pos``."""
        return self._cell(pos).unsqueeze(-1) + self._neighbours

    def _nearby(self, food: torch.Tensor, level: torch.Tensor,
                around: torch.Tensor) -> torch.Tensor:
        """``[B, N, 4]``: what lies on the cells ``around`` each player (from :meth:`_around`):
        1 + the slot of the food there, 0 for open ground, -1 off the field; the food on
        padded cells ``food [B, F]`` at ``level``. (Empty food slots point at the corner cell
        0, which is no player's neighbour: the grid may be left 0 there.)"""
        grid = self._blank_grid(around.shape[0], off_field=-1)
        grid.scatter_(1, food, self._slot_ids * (level > 0))
        nearby = grid.gather(1, around.flatten(1)).view(around.shape)
        grid.scatter_(1, food, self._zeros.expand(food.shape))
        return nearby

    def _step(self, s: LBFState, actions: torch.Tensor):
        # Unavailable actions become NONE (0), as in lbforaging (availability is last step's).
        actions = actions * self.last_obs.avail.gather(2, actions.unsqueeze(2)).squeeze(2)
        pos, level = s.player_pos, s.player_level

        # Every player claims a cell; a cell claimed by more than one player: none of them moves.
        target = pos + self._moves.index_select(0, actions.flatten()).view_as(pos)
        alone = self._alone(self._cell(target))
        pos = torch.where(alone.unsqueeze(-1), target, pos)
        s.player_pos = pos

        # Loading, after movement (loaders stand still): the loading players next to a food
        # share it if their levels sum to at least its level, each in proportion to its level.
        # A player touches at most one food (spawning keeps food apart), as lbforaging assumes.
        loading = actions == LOAD
        around = self._around(pos)
        nearby = self._nearby(self._cell(s.food_pos), s.food_level, around)  # [B, N, 4]
        slot = nearby.amax(-1).long() * loading  # [B, N], 0: none (or not loading)
        team = torch.zeros(pos.shape[0], self.n_food + 1, dtype=torch.long, device=self.device)
        team.scatter_add_(1, slot, level * loading)  # [B, 1 + F]: column 0 is no food's
        eaten = (team[:, 1:] >= s.food_level) & (team[:, 1:] > 0)  # [B, F]
        reward = torch.zeros(loading.shape, device=self.device)
        got = torch.zeros_like(loading)
        self._eat(s, slot, team, eaten, nearby, reward, got)
        if self.penalty:
            reward = reward - self.penalty * (loading & ~got)
        self._looked = (s, around, nearby)
        s.step = s.step + 1
        terminated = ~(s.food_level > 0).any(1)
        truncated = (s.step >= self.max_episode_steps) & ~terminated
        return s, reward, terminated, truncated, {}

    def _eat(self, s: LBFState, slot: torch.Tensor, team: torch.Tensor,
             eaten: torch.Tensor, nearby: torch.Tensor, reward: torch.Tensor,
             got: torch.Tensor) -> None:
        """The meals, in the copies where food was ``eaten`` only (a few at a time): the food
        left moves to the front of its slots, in row-major order (empty slots at (-1, -1));
        the players' ``reward``, whether they ``got`` a share, and ``nearby``
        (:meth:`_nearby`) are filled in for those copies. ``slot`` and ``team`` count the food
        from 1 (0: none), ``eaten`` from 0."""
        ate = eaten.any(1).nonzero().squeeze(1)
        if not ate.numel():
            return
        slot, eaten = slot.index_select(0, ate), eaten.index_select(0, ate)
        food_level, level = s.food_level.index_select(0, ate), s.player_level.index_select(0, ate)
        gone = pad(eaten, (1, 0))  # [A, 1 + F]
        took = gone.gather(1, slot)  # [A, N]: the player took a share
        gain = (level * pad(food_level, (1, 0)).gather(1, slot)).float()
        if self.normalize_reward:
            share = team.index_select(0, ate).gather(1, slot)
            gain = gain / (share * s.food_spawned.index_select(0, ate).unsqueeze(1)).clamp(min=1)
        near = nearby.index_select(0, ate)
        gone = gone.gather(1, near.flatten(1).clamp(min=0).long()).view_as(near)
        near = near.masked_fill(gone, 0)  # open ground now

        left = ~eaten & (food_level > 0)
        # the food left first, in row-major order, as _spawn sorts it
        key = torch.where(left, self._field_cell(s.food_pos.index_select(0, ate)), self._no_cell)
        key, order = key.sort(dim=1)
        s.food_level = s.food_level.index_copy(0, ate, (food_level * left).gather(1, order))
        moved = self._cell_pos.index_select(0, key.flatten()).view(len(ate), -1, 2)
        s.food_pos = s.food_pos.index_copy(0, ate, moved)
        reward.index_copy_(0, ate, gain * took)
        got.index_copy_(0, ate, took)
        nearby.index_copy_(0, ate, near)

    # --- observation -----------------------------------------------------------------------
    def _observe(self, s: LBFState) -> Obs:
        pos, level = s.player_pos, s.player_level
        looked, self._looked = self._looked, None
        if looked is not None and looked[0] is s:  # the step that made s looked around already
            around, nearby = looked[1], looked[2]
        else:
            around = self._around(pos)
            nearby = self._nearby(self._cell(s.food_pos), s.food_level, around)
        free = nearby == 0  # open ground, [B, N, 4]
        if self._walled:  # and not a wall (off-field cells clamp to some cell: masked above)
            near = self._field_cell(pos).unsqueeze(-1) + self._flat_neighbours
            wall = s.walls.flatten(1).gather(1, near.flatten(1).clamp(0, self._last_flat))
            free &= wall.view(near.shape) == 0
        avail = torch.cat(
            [torch.ones_like(free[..., :1]), free, (nearby > 0).any(-1, keepdim=True)], dim=-1)
        flat = torch.cat([s.food_pos.flatten(1), s.food_level, pos.flatten(1), level], 1).float()
        state = flat.index_select(1, self._state_columns)  # empty food slots are (-1, -1, 0)
        if self.grid_observation:
            obs = self._grid_obs(s)
        elif self._full_view:
            obs = flat.index_select(1, self._view_columns).view(-1, self.n_players,
                                                                self.spec.obs_shape[0])
        else:
            food = torch.cat([s.food_pos, s.food_level.unsqueeze(-1)], dim=-1)  # [B, F, 3]
            players = torch.cat([pos, level.unsqueeze(-1)], dim=-1)  # [B, N, 3]
            obs = self._vector_obs(s, food, players)
        return Obs(obs=obs, state=state, avail=avail)

    def _vector_obs(self, s: LBFState, food: torch.Tensor, players: torch.Tensor) -> torch.Tensor:
        # lbforaging's view window is clipped at the border; coordinates are relative to its
        # top-left corner. Food is seen inside the clipped window, players whenever their
        # relative coordinates lie in [0, 2*sight] (lbforaging's own, asymmetric, rule).
        top_left = (s.player_pos - self.sight).clamp(min=0)  # [B, N, 2]
        bottom_right = (s.player_pos + self.sight).clamp(max=self._last_cell)
        fpos = s.food_pos.unsqueeze(1)
        seen_food = (
            (s.food_level > 0).unsqueeze(1)
            & (fpos >= top_left.unsqueeze(2)).all(-1)
            & (fpos <= bottom_right.unsqueeze(2)).all(-1)
        )
        origin = torch.nn.functional.pad(top_left, (0, 1)).unsqueeze(2)  # (row, col, level 0)
        food_rel = food.unsqueeze(1) - origin
        ordered = players[:, self._view_order]  # [B, N(viewer), N, 3], the viewer first
        player_rel = ordered - origin
        seen_player = ((player_rel[..., :2] >= 0) & (player_rel[..., :2] <= 2 * self.sight)).all(-1)
        food_obs = _compact(seen_food, food_rel, self._missing)
        player_obs = _compact(seen_player, player_rel, self._missing)
        if not self.observe_agent_levels:
            player_obs = player_obs[..., :2]
        return torch.cat([food_obs.flatten(2), player_obs.flatten(2)], dim=-1).float()

    def _grid_obs(self, s: LBFState) -> torch.Tensor:
        """Three layers (agent levels, food levels, free cells: not walls either) of the window
        around each agent."""
        b, sight = s.player_pos.shape[0], self.sight
        rows, cols = self.rows + 2 * sight, self.cols + 2 * sight
        batch = torch.arange(b, device=self.device)
        pr, pc = (s.player_pos + sight).unbind(-1)
        fr, fc = (s.food_pos + sight).unbind(-1)
        # Players sharing a cell (lbforaging allows it): the highest index is drawn, as there.
        same_cell = (s.player_pos.unsqueeze(2) == s.player_pos.unsqueeze(1)).all(-1)
        hidden = (same_cell & self._later).any(-1)
        shown = s.player_level if self.observe_agent_levels else torch.ones_like(s.player_level)
        agents = torch.zeros(b, rows, cols, device=self.device)
        agents.index_put_(
            (batch[:, None].expand_as(pr), pr, pc), (shown * ~hidden).float(), accumulate=True
        )
        food = torch.zeros(b, rows, cols, device=self.device)
        food.index_put_(
            (batch[:, None].expand_as(fr), fr, fc), s.food_level.float(), accumulate=True
        )
        occupied = torch.zeros(b, rows, cols, dtype=torch.bool, device=self.device)
        occupied.index_put_((batch[:, None].expand_as(pr), pr, pc), torch.tensor(True))
        inside = torch.zeros(rows, cols, dtype=torch.bool, device=self.device)
        inside[sight : sight + self.rows, sight : sight + self.cols] = True
        if self._walled:
            inside = inside.expand(b, rows, cols).clone()
            inside[:, sight : sight + self.rows, sight : sight + self.cols] = s.walls == 0
        access = (inside & ~occupied & (food == 0)).float()
        layers = torch.stack([agents, food, access], dim=-1)  # [B, rows, cols, 3]
        span = torch.arange(2 * sight + 1, device=self.device)
        r = (pr - sight).unsqueeze(-1) + span  # [B, N, K]
        c = (pc - sight).unsqueeze(-1) + span
        window = layers[batch[:, None, None, None], r.unsqueeze(-1), c.unsqueeze(-2)]
        return window.permute(0, 1, 4, 2, 3)  # [B, N, 3, K, K]

    # --- bounds ----------------------------------------------------------------------------
    def _top_food_level(self) -> int:
        """The highest level a food item can have (lbforaging's observation-space bound)."""
        if self.max_food_level is not None:
            return self.max_food_level
        return min(self.n_players, 3) * self.max_player_level

    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) entries in [-1, rows-1] × [-1, cols-1] (relative ones too), levels in
        [0, the highest level]; grid layers in [0, highest level] and [0, 1]."""
        food, player = self._top_food_level(), self.max_player_level
        if self.grid_observation:
            window = (2 * self.sight + 1,) * 2
            agents = player if self.observe_agent_levels else 1
            high = np.stack([np.full(window, v, np.float32) for v in (agents, food, 1)])
            return np.zeros_like(high), high
        per_player = 3 if self.observe_agent_levels else 2
        lows = [-1, -1, 0] * self.n_food + [-1, -1, 0][:per_player] * self.n_players
        highs = ([self.rows - 1, self.cols - 1, food] * self.n_food
                 + [self.rows - 1, self.cols - 1, player][:per_player] * self.n_players)
        return np.array(lows, np.float32), np.array(highs, np.float32)

    def state_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """As the vector observation with full sight and levels (players are always placed)."""
        food, player = self._top_food_level(), self.max_player_level
        low = [-1, -1, 0] * self.n_food + [0, 0, 0] * self.n_players
        high = ([self.rows - 1, self.cols - 1, food] * self.n_food
                + [self.rows - 1, self.cols - 1, player] * self.n_players)
        return np.array(low, np.float32), np.array(high, np.float32)

    # --- rendering -------------------------------------------------------------------------
    def render(self, index: int = 0) -> np.ndarray:
        """An RGB picture ``[H, W, 3] uint8`` of copy ``index``."""
        from marl.envs.lbf.render import render_lbf

        s = self.state
        levels = s.food_level[index].tolist()
        foods = [(p, lvl) for p, lvl in zip(s.food_pos[index].tolist(), levels, strict=True) if lvl]
        walls = s.walls[index].nonzero().tolist()
        return render_lbf(
            self.rows,
            self.cols,
            s.player_pos[index].tolist(),
            s.player_level[index].tolist(),
            foods,
            walls,
        )


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"LBF: {name} must be an integer >= {minimum}, got {value!r}")


def _wall_grid(walls: Sequence[Sequence[int]], rows: int, cols: int) -> torch.Tensor:
    """The fixed walls as a ``[rows, cols]`` 0/1 grid; ``ValueError`` if a cell is not a
    (row, col) pair on the field, or if the free cells are not one 4-connected region."""
    if isinstance(walls, (str, bytes)) or not isinstance(walls, Sequence):
        raise ValueError(f"LBF: walls must be a sequence of (row, col) cells, got {walls!r}")
    cells = set()
    for cell in walls:
        try:
            r, c = (operator.index(v) for v in cell)
        except (TypeError, ValueError):
            raise ValueError(f"LBF: walls must be (row, col) pairs of integers, got {cell!r}"
                             ) from None
        if not (0 <= r < rows and 0 <= c < cols):
            raise ValueError(f"LBF: wall {(r, c)} is off the {rows}x{cols} field")
        cells.add((r, c))
    left = {(r, c) for r in range(rows) for c in range(cols)} - cells
    sizes = []  # of the 4-connected regions of free cells
    while left:
        todo = [left.pop()]
        sizes.append(1)
        while todo:
            r, c = todo.pop()
            for dr, dc in _MOVES[1:5]:
                if (r + dr, c + dc) in left:
                    left.remove((r + dr, c + dc))
                    todo.append((r + dr, c + dc))
                    sizes[-1] += 1
    if len(sizes) > 1:
        raise ValueError(f"LBF: walls split the free cells into {len(sizes)} regions (of "
                         f"{sorted(sizes, reverse=True)} cells); they must be one (make "
                         "enclosed cells walls too)")
    grid = torch.zeros(rows, cols, dtype=torch.long)
    for r, c in cells:
        grid[r, c] = 1
    return grid


def _copy_ids(ids: Sequence[int] | torch.Tensor | None, num_envs: int) -> torch.Tensor:
    """``ids`` as distinct copy indices (every copy when None); ``ValueError`` otherwise."""
    if ids is None:
        return torch.arange(num_envs)
    where = torch.as_tensor(ids).cpu()
    if (where.dim() != 1 or where.dtype.is_floating_point or where.dtype == torch.bool
            or ((where < 0) | (where >= num_envs)).any() or where.unique().numel() != len(where)):
        raise ValueError(f"LBF set_tasks: ids must be distinct copy indices in [0, {num_envs}), "
                         f"got {ids!r}")
    return where.long()
