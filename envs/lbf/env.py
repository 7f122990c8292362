"""Native batched Level-Based Foraging: the rules of ``lbforaging`` 2.0.0 as tensor code.

Every function here works on all copies and all agents at once; the only Python loop is over
the food items while spawning (a constant of the configuration, never over copies or agents).
The card (agents, shapes, arguments, differences from ``lbforaging``) is in ``marl.envs.lbf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from marl.batched_env import BatchedEnv
from marl.spec import EnvSpec, Obs

ACTION_NAMES = ("NONE", "NORTH", "SOUTH", "WEST", "EAST", "LOAD")
NONE, LOAD = 0, 5
# (row, col) displacement of each action; NONE and LOAD stay.
_MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))


@dataclass
class LBFState:
    """Simulation state of B copies (N players, F food slots); all int64, copy dimension first.

    Food slots are kept in row-major order of their cells, which is the order ``lbforaging``
    lists visible food in; a slot whose level is 0 holds no food (eaten or never spawned).
    """

    player_pos: torch.Tensor  # [B, N, 2] (row, col)
    player_level: torch.Tensor  # [B, N]
    food_pos: torch.Tensor  # [B, F, 2] (row, col)
    food_level: torch.Tensor  # [B, F]
    food_spawned: torch.Tensor  # [B] sum of the food levels placed at reset
    step: torch.Tensor  # [B] steps taken in the current episode


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
        self._size = torch.tensor([rows, cols], device=dev)
        self._missing = torch.tensor([-1, -1, 0], device=dev)
        # Row i lists the players in the order agent i observes them: itself, then the others.
        order = [[i] + [j for j in range(players) if j != i] for i in range(players)]
        self._view_order = torch.tensor(order, device=dev)
        self._later = torch.ones(players, players, dtype=torch.bool, device=dev).triu(1)
        interior = torch.zeros(rows, cols, dtype=torch.bool, device=dev)
        interior[1:-1, 1:-1] = True
        self._interior = interior.flatten()
        # Food may not spawn where another food lies in the 3x3 box or 2 cells along a line.
        stencil = [
            [0, 0, 1, 0, 0],
            [0, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
            [0, 1, 1, 1, 0],
            [0, 0, 1, 0, 0],
        ]
        self._food_stencil = torch.tensor(stencil, dtype=torch.float, device=dev).view(1, 1, 5, 5)

    # --- spawning --------------------------------------------------------------------------
    def _spawn(self, n: int) -> LBFState:
        g, dev = self.rng, self.device
        cells = self.rows * self.cols
        level = torch.randint(
            self.min_player_level,
            self.max_player_level + 1,
            (n, self.n_players),
            generator=g,
            device=dev,
        )
        picked = torch.rand(n, cells, generator=g, device=dev).topk(self.n_players, dim=1).indices
        player_pos = torch.stack([picked // self.cols, picked % self.cols], dim=-1)

        if self.max_food_level is None:  # capped by the three lowest player levels
            hi = level.sort(dim=1).values[:, :3].sum(1)
        else:
            hi = torch.full((n,), self.max_food_level, device=dev)
        lo = hi if self.force_coop else torch.full_like(hi, self.min_food_level)

        taken = torch.zeros(n, cells, dtype=torch.bool, device=dev)
        taken.scatter_(1, picked, True)
        foods = torch.zeros(n, 1, self.rows, self.cols, device=dev)
        food_cell = torch.zeros(n, self.n_food, dtype=torch.long, device=dev)
        food_level = torch.zeros(n, self.n_food, dtype=torch.long, device=dev)
        for k in range(self.n_food):
            near = F.conv2d(foods, self._food_stencil, padding=2).flatten(1) > 0
            allowed = self._interior & ~taken & ~near
            score = torch.rand(n, cells, generator=g, device=dev).masked_fill_(~allowed, -1.0)
            cell = score.argmax(1)
            placed = allowed.any(1)
            draw = torch.rand(n, generator=g, device=dev)
            lvl = lo + (draw * (hi - lo + 1)).long()
            food_cell[:, k] = cell
            food_level[:, k] = torch.where(placed, lvl, 0)
            foods.view(n, cells).scatter_add_(1, cell[:, None], placed[:, None].float())

        key = torch.where(food_level > 0, food_cell, cells)
        key, order = key.sort(dim=1)
        food_level = food_level.gather(1, order)
        food_cell = torch.where(food_level > 0, key, 0)
        return LBFState(
            player_pos=player_pos,
            player_level=level,
            food_pos=torch.stack([food_cell // self.cols, food_cell % self.cols], dim=-1),
            food_level=food_level,
            food_spawned=food_level.sum(1),
            step=torch.zeros(n, dtype=torch.long, device=dev),
        )

    # --- dynamics --------------------------------------------------------------------------
    def _step(self, s: LBFState, actions: torch.Tensor):
        # Unavailable actions become NONE, as in lbforaging (availability is last step's).
        ok = self.last_obs.avail.gather(2, actions.unsqueeze(2)).squeeze(2)
        actions = torch.where(ok, actions, NONE)
        pos, level = s.player_pos, s.player_level

        # Every player claims a cell; a cell claimed by more than one player: none of them moves.
        target = pos + self._moves[actions]
        claims = (target.unsqueeze(2) == target.unsqueeze(1)).all(-1).sum(-1)
        pos = torch.where((claims == 1).unsqueeze(-1), target, pos)

        # Loading, after movement: the loading players next to a food share it if their levels
        # sum to at least its level, each in proportion to its own level.
        alive = s.food_level > 0
        touching = (pos.unsqueeze(2) - s.food_pos.unsqueeze(1)).abs().sum(-1) == 1
        team = (actions == LOAD).unsqueeze(2) & touching & alive.unsqueeze(1)  # [B, N, F]
        team_level = (team * level.unsqueeze(2)).sum(1)  # [B, F]
        eaten = team.any(1) & (team_level >= s.food_level)
        share = team & eaten.unsqueeze(1)
        gain = (level.unsqueeze(2) * s.food_level.unsqueeze(1)).float()
        if self.normalize_reward:
            gain = gain / (team_level * s.food_spawned.unsqueeze(1)).clamp(min=1).unsqueeze(1)
        reward = (share * gain).sum(-1)
        if self.penalty:
            reward = reward - self.penalty * (team & ~eaten.unsqueeze(1)).any(-1)

        s.player_pos = pos
        s.food_level = torch.where(eaten, 0, s.food_level)
        s.step = s.step + 1
        terminated = ~(s.food_level > 0).any(1)
        truncated = (s.step >= self.max_episode_steps) & ~terminated
        return s, reward, terminated, truncated, {}

    # --- observation -----------------------------------------------------------------------
    def _observe(self, s: LBFState) -> Obs:
        pos, level = s.player_pos, s.player_level
        alive = s.food_level > 0
        offset = s.food_pos.unsqueeze(1) - pos.unsqueeze(2)  # [B, N, F, 2] food − player
        adjacent = (offset.unsqueeze(3) == self._moves[1:5]).all(-1) & alive[:, None, :, None]
        food_next = adjacent.any(2)  # [B, N, 4] food in the cell N, S, W, E
        inside = ((pos.unsqueeze(2) + self._moves[1:5]) >= 0).all(-1) & (
            (pos.unsqueeze(2) + self._moves[1:5]) < self._size
        ).all(-1)
        avail = torch.cat(
            [
                torch.ones_like(food_next[..., :1]),
                inside & ~food_next,
                food_next.any(-1, keepdim=True),
            ],
            dim=-1,
        )
        food = torch.cat([s.food_pos, s.food_level.unsqueeze(-1)], dim=-1)  # [B, F, 3]
        players = torch.cat([pos, level.unsqueeze(-1)], dim=-1)  # [B, N, 3]
        state = torch.cat(
            [_compact(alive, food, self._missing).flatten(1), players.flatten(1)], dim=1
        ).float()
        obs = self._grid_obs(s) if self.grid_observation else self._vector_obs(s, food, players)
        return Obs(obs=obs, state=state, avail=avail)

    def _vector_obs(self, s: LBFState, food: torch.Tensor, players: torch.Tensor) -> torch.Tensor:
        # lbforaging's view window is clipped at the border; coordinates are relative to its
        # top-left corner. Food is seen inside the clipped window, players whenever their
        # relative coordinates lie in [0, 2*sight] (lbforaging's own, asymmetric, rule).
        top_left = (s.player_pos - self.sight).clamp(min=0)  # [B, N, 2]
        bottom_right = torch.minimum(s.player_pos + self.sight, self._size - 1)
        fpos = s.food_pos.unsqueeze(1)
        seen_food = (
            (s.food_level > 0).unsqueeze(1)
            & (fpos >= top_left.unsqueeze(2)).all(-1)
            & (fpos <= bottom_right.unsqueeze(2)).all(-1)
        )
        food_rel = food.unsqueeze(1) - torch.nn.functional.pad(top_left, (0, 1)).unsqueeze(2)
        ordered = players[:, self._view_order]  # [B, N(viewer), N, 3], the viewer first
        player_rel = ordered - torch.nn.functional.pad(top_left, (0, 1)).unsqueeze(2)
        seen_player = ((player_rel[..., :2] >= 0) & (player_rel[..., :2] <= 2 * self.sight)).all(-1)
        food_obs = _compact(seen_food, food_rel, self._missing)
        player_obs = _compact(seen_player, player_rel, self._missing)
        if not self.observe_agent_levels:
            player_obs = player_obs[..., :2]
        return torch.cat([food_obs.flatten(2), player_obs.flatten(2)], dim=-1).float()

    def _grid_obs(self, s: LBFState) -> torch.Tensor:
        """Three layers (agent levels, food levels, free cells) of the window around each agent."""
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
        access = (inside & ~occupied & (food == 0)).float()
        layers = torch.stack([agents, food, access], dim=-1)  # [B, rows, cols, 3]
        span = torch.arange(2 * sight + 1, device=self.device)
        r = (pr - sight).unsqueeze(-1) + span  # [B, N, K]
        c = (pc - sight).unsqueeze(-1) + span
        window = layers[batch[:, None, None, None], r.unsqueeze(-1), c.unsqueeze(-2)]
        return window.permute(0, 1, 4, 2, 3)  # [B, N, 3, K, K]

    # --- rendering -------------------------------------------------------------------------
    def render(self, index: int = 0) -> np.ndarray:
        """An RGB picture ``[H, W, 3] uint8`` of copy ``index``."""
        from marl.envs.lbf.render import render_lbf

        s = self.state
        levels = s.food_level[index].tolist()
        foods = [(p, lvl) for p, lvl in zip(s.food_pos[index].tolist(), levels, strict=True) if lvl]
        return render_lbf(
            self.rows,
            self.cols,
            s.player_pos[index].tolist(),
            s.player_level[index].tolist(),
            foods,
        )


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"LBF: {name} must be an integer >= {minimum}, got {value!r}")
