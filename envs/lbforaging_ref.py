"""The real ``lbforaging`` package (2.0.0) as a reference: ``lbforaging:<gymnasium id>``.

Card
----
- **Ids**: ``lbforaging:`` followed by any ``Foraging…`` id gymnasium knows once ``lbforaging``
  is imported, e.g. ``lbforaging:Foraging-8x8-2p-3f-v3``, ``lbforaging:Foraging-2s-8x8-2p-3f-v3``.
  Needs ``pip install lbforaging==2.0.0`` (the ``reference`` extra); without it the family lists
  no ids and building one raises ``ImportError``.
- **PettingZoo face**: :class:`LBForagingParallelEnv` around ``gymnasium.make`` of the id with
  the keywords added to its registered arguments.
  Agents ``agent_0`` … ``agent_{N-1}``; observation space lbforaging's ``Box``; action space
  ``Discrete(6)`` (NONE, NORTH, SOUTH, WEST, EAST, LOAD); ``infos[agent]["action_mask"]`` int8
  ``[6]`` from lbforaging's valid actions; ``state()`` float32 laid out like the native LBF state
  (remaining food (row, col, level) row-major, padded with (−1, −1, 0) to ``max_num_food``, then
  every player (row, col, level) in index order); ``render_mode="rgb_array"`` draws with
  :func:`marl.envs.lbf.render.render_lbf`.
- **Batched**: ``make`` wraps copies in :class:`~marl.envs.adapter.ParallelVecEnv` (in-process or
  subprocess workers); that is what the benchmarks compare the native ``lbf:`` ids against.
- **Episode end**: lbforaging reports one ``done``; here it is split into ``terminated`` (no food
  left) and ``truncated`` (the ``max_episode_steps`` limit), as in the native environment.
  Actions lbforaging deems invalid become NONE, as there.
- **Arguments**: those of ``lbforaging.ForagingEnv`` that the id does not fix
  (``min_player_level``, ``max_player_level``, ``min_food_level``, ``max_food_level``,
  ``max_episode_steps``, ``normalize_reward``, ``observe_agent_levels``, ``penalty``); the
  layout (players, field size, food, sight, cooperation, grid observation) is changed through
  the id, never through keywords.

:func:`lbf_state_from_reference` copies lbforaging states into the native ``LBFState`` so both
implementations can be run in lockstep from identical states.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, cast

import gymnasium
import numpy as np
import torch
from pettingzoo import ParallelEnv

from marl.envs.adapter import ParallelVecEnv
from marl.envs.lbf.env import LBFState
from marl.envs.pettingzoo_face import joint_action
from marl.envs.registry import EnvFamily, check_kwargs, register_family, unknown_id

__all__ = ["LBForagingParallelEnv", "lbf_state_from_reference"]

N_ACTIONS = 6
# ForagingEnv arguments every lbforaging id fixes; change the id to change them.
_SET_BY_ID = ("players", "field_size", "max_num_food", "sight", "force_coop", "grid_observation")


def _foraging_class() -> type:
    """lbforaging's ``ForagingEnv`` (importing lbforaging registers its gymnasium ids)."""
    try:
        import lbforaging  # noqa: F401
        from lbforaging.foraging import ForagingEnv
    except ImportError as e:
        raise ImportError(
            "the 'lbforaging:' environments need the lbforaging package: "
            "pip install lbforaging==2.0.0 (or this project's 'reference' extra)"
        ) from e
    return ForagingEnv


def _is_foraging_id(gym_id: str) -> bool:
    return gym_id.startswith("Foraging") and gym_id in gymnasium.envs.registry


def _check_args(gym_id: str, kwargs: dict[str, Any]) -> None:
    """Raise for an id gymnasium does not list as lbforaging's, or a keyword it does not take."""
    foraging = _foraging_class()
    env_id = f"lbforaging:{gym_id}"
    if not (isinstance(gym_id, str) and _is_foraging_id(gym_id)):
        raise unknown_id(env_id, "not a Foraging id in gymnasium's registry")
    for key in kwargs:
        if key in _SET_BY_ID:
            raise TypeError(f"'{key}' is set by the id '{env_id}'; change the id instead")
    check_kwargs(env_id, foraging, kwargs, reserved=("render_mode",))


class LBForagingParallelEnv(ParallelEnv):
    """One lbforaging ``ForagingEnv`` (gymnasium id ``gym_id``) as a PettingZoo ``ParallelEnv``.

    ``foraging`` is the wrapped, unwrapped ``ForagingEnv``; ``max_episode_steps`` its limit.
    """

    metadata: dict[str, Any] = {
        "name": "lbforaging_v3",
        "render_modes": ["rgb_array"],
        "render_fps": 5,
        "is_parallelizable": True,
    }

    def __init__(self, gym_id: str, render_mode: str | None = None, **kwargs: Any) -> None:
        _check_args(gym_id, kwargs)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.gym_id = gym_id
        self.render_mode = render_mode
        # The keywords go into the spec rather than to gymnasium.make, which would take
        # max_episode_steps for itself (a TimeLimit wrapper) instead of passing it to lbforaging.
        spec = gymnasium.spec(gym_id)
        spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **kwargs})
        # lbforaging returns rewards as lists, which gymnasium's single-agent checker warns about.
        self._env = gymnasium.make(spec, disable_env_checker=True)
        self.foraging: Any = cast(Any, self._env.unwrapped)  # lbforaging has no type hints
        f = self.foraging
        self.max_episode_steps = int(f._max_episode_steps)
        self.possible_agents = [f"agent_{i}" for i in range(len(f.players))]
        self.agents: list[str] = []
        self._obs_spaces = dict(zip(self.possible_agents, f.observation_space, strict=True))
        self._action_spaces = {
            a: gymnasium.spaces.Discrete(N_ACTIONS) for a in self.possible_agents
        }
        if f.max_food_level is None:
            max_food = sum(sorted(f.max_player_level)[:3])
        else:
            max_food = max(f.max_food_level)
        food_low, food_high = [-1, -1, 0], [f.rows - 1, f.cols - 1, max_food]
        player_low, player_high = [0, 0, 0], [f.rows - 1, f.cols - 1, max(f.max_player_level)]
        self.state_space = gymnasium.spaces.Box(
            low=np.array(food_low * f.max_num_food + player_low * len(f.players), np.float32),
            high=np.array(food_high * f.max_num_food + player_high * len(f.players), np.float32),
            dtype=np.float32,
        )

    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._action_spaces[agent]

    def _obs(self, nobs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.possible_agents, nobs, strict=True))

    def _infos(self) -> dict[str, dict[str, np.ndarray]]:
        infos = {}
        for agent, player in zip(self.possible_agents, self.foraging.players, strict=True):
            mask = np.zeros(N_ACTIONS, np.int8)
            mask[[action.value for action in self.foraging._valid_actions[player]]] = 1
            infos[agent] = {"action_mask": mask}
        return infos

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        nobs, _ = self._env.reset(seed=seed, options=options)
        self.agents = self.possible_agents[:]
        return self._obs(nobs), self._infos()

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Step every live agent; ``actions`` maps each of them to an int in ``[0, 6)``."""
        if not self.agents:
            raise RuntimeError("step() called with no live agents; call reset() first")
        joint = tuple(joint_action(actions, self.agents, N_ACTIONS))
        nobs, rewards, done, _, _ = cast(Any, self._env).step(joint)  # per-agent rewards
        agents = self.agents
        terminated = bool(done) and not self.foraging.field.any()
        truncated = bool(done) and not terminated
        if done:
            self.agents = []
        return (
            self._obs(nobs),
            {a: float(r) for a, r in zip(agents, rewards, strict=True)},
            dict.fromkeys(agents, terminated),
            dict.fromkeys(agents, truncated),
            self._infos(),
        )

    def _foods(self) -> list[tuple[tuple[int, int], int]]:
        """Remaining food as ((row, col), level), row-major."""
        field = self.foraging.field
        rows, cols = np.nonzero(field)
        return [((int(r), int(c)), int(field[r, c])) for r, c in zip(rows, cols, strict=True)]

    def state(self) -> np.ndarray:
        f = self.foraging
        food = np.tile(np.array([-1, -1, 0], np.float32), (f.max_num_food, 1))
        for k, ((r, c), level) in enumerate(self._foods()):
            food[k] = (r, c, level)
        players = [(*p.position, p.level) for p in f.players]
        return np.concatenate([food.ravel(), np.array(players, np.float32).ravel()])

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass 'rgb_array'")
            return None
        from marl.envs.lbf.render import render_lbf

        f = self.foraging
        return render_lbf(
            f.rows,
            f.cols,
            [(int(p.position[0]), int(p.position[1])) for p in f.players],
            [int(p.level) for p in f.players],
            self._foods(),
        )

    def close(self) -> None:
        self._env.close()


def lbf_state_from_reference(envs: Sequence[Any], device: str | torch.device = "cpu") -> LBFState:
    """The states of lbforaging envs (``ForagingEnv`` or a gymnasium wrapper of one) as one
    batched ``LBFState``, copy ``i`` from ``envs[i]``, ready for ``LBFEnv.set_state``."""
    if not envs:
        raise ValueError("lbf_state_from_reference needs at least one environment")
    foraging = [e.unwrapped for e in envs]
    n_players, n_food = len(foraging[0].players), foraging[0].max_num_food
    for i, f in enumerate(foraging):
        if (len(f.players), f.max_num_food) != (n_players, n_food):
            raise ValueError(
                f"envs[{i}] has {len(f.players)} players and {f.max_num_food} food slots, "
                f"envs[0] {n_players} and {n_food}; batch only one configuration"
            )
    b = len(foraging)
    player_pos = np.zeros((b, n_players, 2), np.int64)
    player_level = np.zeros((b, n_players), np.int64)
    food_pos = np.full((b, n_food, 2), -1, np.int64)  # empty slots: level 0 at (-1, -1)
    food_level = np.zeros((b, n_food), np.int64)
    food_spawned = np.zeros(b, np.int64)
    step = np.zeros(b, np.int64)
    for i, f in enumerate(foraging):
        player_pos[i] = [p.position for p in f.players]
        player_level[i] = [p.level for p in f.players]
        rows, cols = np.nonzero(f.field)  # the food left, row-major, first: as LBFState keeps it
        food_pos[i, : len(rows)] = np.stack([rows, cols], axis=1)
        food_level[i, : len(rows)] = f.field[rows, cols]
        food_spawned[i] = int(f._food_spawned)
        step[i] = f.current_step
    return LBFState(
        *(
            torch.from_numpy(x).to(device)
            for x in (player_pos, player_level, food_pos, food_level, food_spawned, step)
        )
    )


def parallel_env(name: str, **kwargs: Any) -> LBForagingParallelEnv:
    """``lbforaging:<name>`` as a PettingZoo ``ParallelEnv``."""
    return LBForagingParallelEnv(name, **kwargs)


def make(
    name: str,
    num_envs: int = 1,
    device: str | torch.device = "cpu",
    *,
    workers: str = "inprocess",
    num_workers: int | None = None,
    validate: bool = True,
    **kwargs: Any,
) -> ParallelVecEnv:
    """``lbforaging:<name>`` as a batched environment over ``num_envs`` lbforaging copies."""
    _check_args(name, kwargs)
    return ParallelVecEnv(
        functools.partial(LBForagingParallelEnv, name, **kwargs),
        num_envs,
        device,
        workers=workers,
        num_workers=num_workers,
        validate=validate,
    )


def catalogue() -> list[str]:
    """The ``Foraging…`` ids gymnasium holds once lbforaging is imported (none without it)."""
    try:
        _foraging_class()
    except ImportError:
        return []
    return [i for i in gymnasium.envs.registry if _is_foraging_id(i)]


register_family(
    EnvFamily(
        prefix="lbforaging",
        summary="the lbforaging package (reference), batched through the PettingZoo adapter",
        pattern="lbforaging:<lbforaging gymnasium id>",
        make=make,
        version=1,  # lbforaging 2.0.0 through the adapter
        catalogue=catalogue,
        parallel_env=parallel_env,
    )
)
