"""One copy of LBF stepped on Python integers: the fast path of the PettingZoo face, and what
``make("lbf:…")`` gives for one copy on the CPU.

Every client of the PettingZoo face (TorchRL, RLlib, SuperSuit, EPyMARL through the gymnasium
ids) steps one copy, and so does a run with ``--num-envs 1``. There, torch's fixed cost per
operation (a few µs for each of the ~100 tensor operations of :meth:`LBFEnv._step` and
:meth:`LBFEnv._observe`) adds up to more than the whole of ``lbforaging``'s step.
:class:`LBFOne` is :class:`~marl.envs.lbf.env.LBFEnv` with one copy whose ``step`` applies the
same rules to Python integers (two players and three food items are a handful of numbers).

Everything else is LBFEnv's own: arguments, spec, bounds, rendering, walls, tasks
(``set_tasks`` with one row of tokens) and spawning — every episode starts from
``LBFEnv._spawn`` (or the copy's task) and its first observation from ``LBFEnv._observe``, so a
seed gives the same episodes as ``LBFEnv(1, …)``. ``state``, ``set_state`` and
``state_dict`` speak ``LBFState`` tensors as usual. ``tests/test_clients.py`` steps LBFOne
and LBFEnv in lockstep, from the same states and with the same actions, across layouts
(partial sight, grid observations, cooperation, penalties, levels off) and checks that every
observation, state, mask, reward and flag is identical; LBFEnv itself is tested in lockstep
against ``lbforaging`` (``tests/test_lbf_differential.py``). A change to LBF's rules goes into
both files; the lockstep test fails until it does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from marl.envs.lbf.env import _MOVES, LOAD, LBFEnv, LBFState
from marl.spec import Obs, Step

_AROUND = ((-1, 0), (1, 0), (0, -1), (0, 1))  # north, south, west, east


class LBFOne(LBFEnv):
    """One copy of Level-Based Foraging, stepped in plain Python (arguments as LBFEnv's)."""

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu",
                 **kwargs: Any) -> None:
        if num_envs != 1 or torch.device(device).type != "cpu":
            raise ValueError("LBFOne steps one copy on the CPU; use LBFEnv for more copies "
                             f"or another device (got num_envs={num_envs!r}, device={device!r})")
        super().__init__(1, "cpu", **kwargs)
        self._pos: list[tuple[int, int]] = []
        self._level: list[int] = []
        self._food: dict[tuple[int, int], int] = {}  # cell → level, the food left
        self._walls: set[tuple[int, int]] = set()
        self._wall_tensor = self._wall_grid.unsqueeze(0)  # the state's, [1, R, C]
        self._first = torch.zeros(1, dtype=torch.long)  # the copy, as ids
        self._spawned = self._t = 0
        self._avail: list[list[bool]] = []  # what the last observation made available
        self._stale = False  # the tensor state lags the Python one

    def compile(self) -> LBFOne:
        """Itself, unchanged: its rules run on Python integers, with nothing for
        ``torch.compile`` to fuse (and at one copy the compiled tensor step is slower still)."""
        return self

    # --- between the tensor state and the Python one ----------------------------------------
    def _load(self, s: LBFState, avail: torch.Tensor) -> None:
        self._pos = [(r, c) for r, c in s.player_pos[0].tolist()]
        self._level = s.player_level[0].tolist()
        levels = s.food_level[0].tolist()
        self._food = {(r, c): v for (r, c), v in zip(s.food_pos[0].tolist(), levels,
                                                     strict=True) if v > 0}
        self._spawned, self._t = int(s.food_spawned[0]), int(s.step[0])
        self._wall_tensor = s.walls
        self._walls = {(r, c) for r, c in s.walls[0].nonzero().tolist()}
        self._avail = avail[0].tolist()
        self._stale = False

    def _sync(self) -> None:
        if self._stale:
            foods = sorted(self._food.items())
            empty = self.n_food - len(foods)
            food_pos = [list(cell) for cell, _ in foods] + [[-1, -1]] * empty
            food_level = [v for _, v in foods] + [0] * empty

            def t(values: Any) -> torch.Tensor:
                return torch.tensor([values], dtype=torch.long)

            self._state = LBFState(t([list(p) for p in self._pos]), t(self._level),
                                   t(food_pos), t(food_level), t(self._spawned), t(self._t),
                                   self._wall_tensor)
            self._stale = False

    @property
    def state(self) -> LBFState:
        self._sync()
        return super().state

    def reset(self, *, seed: int | None = None) -> Obs:
        obs = super().reset(seed=seed)
        self._load(super().state, obs.avail)
        return obs

    def set_state(self, state: LBFState) -> Obs:
        obs = super().set_state(state)
        self._load(super().state, obs.avail)
        return obs

    def state_dict(self) -> dict[str, Any]:
        self._sync()
        return super().state_dict()

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        super().load_state_dict(sd)
        self._load(super().state, self.last_obs.avail)

    # --- the rules ---------------------------------------------------------------------------
    def step(self, actions: torch.Tensor) -> Step:
        """One step of LBF's rules (those of :meth:`LBFEnv._step`) on the Python state."""
        if not self._pos:
            raise RuntimeError("LBFOne.step() called before reset()")
        if self.validate:
            actions = self.check_actions(actions)
        reward, terminated, truncated = self._rules(actions[0].tolist())
        self._stale = True
        final = self._observe_py()
        obs = final
        if self.autoreset and (terminated or truncated):
            fresh_state, obs = self._fresh(1)  # drawn with a task too, as LBFEnv.step does
            if self._tasked is not None and bool(self._tasked[0]):
                fresh_state, obs = self._task_starts(self._first)
            self._state = fresh_state
            self._load(fresh_state, obs.avail)
        self._last_obs = obs
        flags = torch.from_numpy(np.array([[terminated], [truncated]]))
        return Step(obs, torch.from_numpy(reward).unsqueeze(0), flags[0], flags[1], final, {})

    def _rules(self, actions: list[int]) -> tuple[np.ndarray, bool, bool]:
        n = self.n_players
        # unavailable actions become NONE (availability is the last observation's)
        actions = [a if self._avail[i][a] else 0 for i, a in enumerate(actions)]
        # every player claims a cell; a cell claimed by more than one player: none moves there
        claims = [(r + _MOVES[a][0], c + _MOVES[a][1])
                  for (r, c), a in zip(self._pos, actions, strict=True)]
        self._pos = [cell if claims.count(cell) == 1 else pos
                     for cell, pos in zip(claims, self._pos, strict=True)]
        # loading after movement: each loader's food is the one next to it latest in row-major
        # order (slot 0: none); a team whose levels reach the food's level shares it
        foods = sorted(self._food.items())
        levels = [v for _, v in foods] + [0] * (self.n_food - len(foods))
        slot_of = {cell: k + 1 for k, (cell, _) in enumerate(foods)}
        loading = [a == LOAD for a in actions]
        slots = [0] * n
        team = [0] * (self.n_food + 1)
        for i in range(n):
            if loading[i]:
                r, c = self._pos[i]
                slots[i] = max(slot_of.get((r + dr, c + dc), 0) for dr, dc in _AROUND)
                team[slots[i]] += self._level[i]
        team = team[1:]
        eaten = [team[k] >= levels[k] and team[k] > 0 for k in range(self.n_food)]
        reward = np.zeros(n, np.float32)
        penalty = np.float32(self.penalty)
        for i in range(n):
            k = max(slots[i] - 1, 0)
            got = eaten[k] and loading[i]
            if got:
                gain = np.float32(self._level[i] * levels[k])
                if self.normalize_reward:
                    gain = gain / np.float32(max(team[k] * self._spawned, 1))
                reward[i] = gain
            elif loading[i] and self.penalty:
                reward[i] = np.float32(0.0) - penalty
        for k, (cell, _) in enumerate(foods):
            if eaten[k]:
                del self._food[cell]
        self._t += 1
        terminated = not self._food
        return reward, terminated, self._t >= self.max_episode_steps and not terminated

    # --- observation (the rules of LBFEnv._observe) ------------------------------------------
    def _observe_py(self) -> Obs:
        rows, cols = self.rows, self.cols
        food, walls = self._food, self._walls
        avail = []
        for r, c in self._pos:
            near = [(r + dr, c + dc) in food for dr, dc in _AROUND]
            moves = [0 <= r + dr < rows and 0 <= c + dc < cols and not f
                     and (r + dr, c + dc) not in walls
                     for (dr, dc), f in zip(_AROUND, near, strict=True)]
            avail.append([True, *moves, any(near)])
        self._avail = avail
        foods = sorted(food.items())
        food_flat = [x for (r, c), v in foods for x in (r, c, v)]
        food_flat += [-1, -1, 0] * (self.n_food - len(foods))
        players = [(r, c, v) for (r, c), v in zip(self._pos, self._level, strict=True)]
        state = food_flat + [x for p in players for x in p]
        if self.grid_observation:
            obs = self._grid_obs_py()
        elif self._full_view:
            width = 3 if self.observe_agent_levels else 2
            obs = np.array(
                [food_flat + [x for j in order for x in players[j][:width]]
                 for order in self._orders()], np.float32)
        else:
            obs = np.array([self._window_obs(i, order, foods, players)
                            for i, order in enumerate(self._orders())], np.float32)
        return Obs(torch.from_numpy(obs).unsqueeze(0),
                   torch.from_numpy(np.array([state], np.float32)),
                   torch.from_numpy(np.array([avail], bool)))

    def _orders(self) -> list[list[int]]:
        """Row i: the players in the order agent i sees them, itself first."""
        n = self.n_players
        return [[i] + [j for j in range(n) if j != i] for i in range(n)]

    def _window_obs(self, i: int, order: list[int], foods: list[tuple[tuple[int, int], int]],
                    players: list[tuple[int, int, int]]) -> list[int]:
        """lbforaging's vector observation with sight (LBFEnv._vector_obs): coordinates from
        the top-left corner of the window clipped at the border, food inside the clipped
        window, players whose coordinates lie in [0, 2 * sight]."""
        r, c = self._pos[i]
        top, left = max(r - self.sight, 0), max(c - self.sight, 0)
        bottom, right = min(r + self.sight, self.rows - 1), min(c + self.sight, self.cols - 1)
        out = [x for (fr, fc), v in foods if top <= fr <= bottom and left <= fc <= right
               for x in (fr - top, fc - left, v)]
        out += [-1, -1, 0] * (self.n_food - len(out) // 3)
        span = 2 * self.sight
        seen = [(pr - top, pc - left, v) for pr, pc, v in (players[j] for j in order)
                if 0 <= pr - top <= span and 0 <= pc - left <= span]
        seen += [(-1, -1, 0)] * (self.n_players - len(seen))
        width = 3 if self.observe_agent_levels else 2
        return out + [x for p in seen for x in p[:width]]

    def _grid_obs_py(self) -> np.ndarray:
        """Agent levels, food levels and free cells (no wall either) around each agent
        (LBFEnv._grid_obs)."""
        s = self.sight
        layers = np.zeros((3, self.rows + 2 * s, self.cols + 2 * s), np.float32)
        for j, ((r, c), v) in enumerate(zip(self._pos, self._level, strict=True)):
            if (r, c) not in self._pos[j + 1:]:  # a later player on the cell is drawn instead
                layers[0, r + s, c + s] += v if self.observe_agent_levels else 1
        for (r, c), v in self._food.items():
            layers[1, r + s, c + s] += v
        free = np.zeros(layers.shape[1:], bool)
        free[s: s + self.rows, s: s + self.cols] = True
        for r, c in (*self._pos, *self._walls):
            free[r + s, c + s] = False
        layers[2] = free & (layers[1] == 0)
        k = 2 * s + 1
        return np.stack([layers[:, r: r + k, c: c + k] for r, c in self._pos])
