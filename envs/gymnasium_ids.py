"""Gymnasium ids for EPyMARL-style consumers: ``gymnasium.make("marl/Foraging-8x8-2p-3f-v1")``.

The registry's ids (``lbf:8x8-2p-3f``) hold a colon, which ``gymnasium.make`` reads as
``module:id``; these ids have none. Importing ``marl.envs`` registers them, so EPyMARL's
``gymma`` runs our environments with ``env_args.key: "marl.envs:marl/Foraging-8x8-2p-3f-v1"``
(``gymnasium.make`` imports the module before the ``:``).

Ids (the version is the family's, :func:`marl.envs.env_version`; it changes when the
dynamics do):

- ``marl/Foraging-v1``: LBF of any layout through ``lbforaging``'s keywords (``players``,
  ``field_size``, ``max_num_food``, ``sight``, ``force_coop``, ``grid_observation``; default
  8x8-2p-3f) and the rest of LBF's (``min_player_level`` …). Named layouts:
  ``marl/Foraging-[2s-]NxN-Pp-Ff[-coop]-v1`` for N = 5…15, P = 2…4, F = 1…5.
- ``marl/SMAC-v3`` (``map_name=``, default ``3m``) and ``marl/SMAC-<map>-v3`` for every map.
- ``marl/SMACv2-v3`` (``race=``, ``n_units=``, ``n_enemies=``, default protoss 5 vs 5) and
  ``marl/SMACv2-<race>_<n>_vs_<m>-v3`` for SMACv2's published sizes.

Conventions (gymnasium's multi-agent ones, as ``lbforaging`` and EPyMARL's ``gymma`` use):
``observation_space`` and ``action_space`` are ``Tuple`` s of the agents' ``Box`` and
``Discrete`` spaces; ``n_agents`` on the env; ``reset`` returns a tuple of observations;
``step(actions)`` takes a sequence of ``n_agents`` integers and returns a tuple of
observations, a *list* of per-agent rewards (SMAC: the team reward split evenly, so the sum is
SMAC's), ``terminated`` and ``truncated`` as bools, and an info dict of scalars: SMAC's
``battle_won``, ``dead_allies``, ``dead_enemies``, and ``episode_limit: True`` when the
environment's own time limit ended the episode (EPyMARL's runners then bootstrap). Action
masks: :meth:`MultiAgentGymEnv.action_masks` (``gymma`` assumes every action available; LBF
and SMAC treat unavailable ones as no-ops). The global state: :meth:`MultiAgentGymEnv.state`.

The env deliberately has no ``state_size`` attribute: ``gymma`` would size its state buffer
from it while its ``get_state`` concatenates the observations (``n_agents × obs`` entries).

Episodes end at the environment's own limit (LBF: ``max_episode_steps``, 50; SMAC: the
map's); give ``gymma`` a ``time_limit`` at least that long, or its TimeLimit ends episodes
first without ``episode_limit`` in the info. ``gymnasium.make``'s own ``max_episode_steps``
adds such a TimeLimit too; it does not reach LBF's ``max_episode_steps``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from marl.envs.pettingzoo_face import RENDER_FPS, RENDER_MODES
from marl.envs.registry import families, parallel_env

NAMESPACE = "marl"
# gymnasium's names for the families that get ids (SC2 needs the game, lbforaging is the
# reference itself)
GYM_NAMES = {"lbf": "Foraging", "smac": "SMAC", "smacv2": "SMACv2"}
_RENAMED_INFO = {"won": "battle_won"}  # SMAC's name, which EPyMARL and PyMARL log


class MultiAgentGymEnv(gymnasium.Env):
    """One copy of the registered environment ``env_id`` (e.g. ``lbf:8x8-2p-3f``) with
    gymnasium's multi-agent conventions (module docstring); ``kwargs`` go to the
    environment."""

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(self, env_id: str, render_mode: str | None = None, **kwargs: Any) -> None:
        self.env_id = env_id
        self.face = parallel_env(env_id, render_mode=render_mode, **kwargs)
        self.render_mode = render_mode
        self.agents = list(self.face.possible_agents)
        self.n_agents = len(self.agents)
        self.episode_limit = self.face.env.spec.episode_limit
        self.observation_space = spaces.Tuple(
            tuple(self.face.observation_space(a) for a in self.agents))
        self.action_space = spaces.Tuple(tuple(self.face.action_space(a) for a in self.agents))
        self._masks: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
        super().reset(seed=seed)
        obs, infos = self.face.reset(seed=seed, options=options)
        return self._tuple(obs), self._info(infos)

    def step(self, actions: Sequence[Any]) -> tuple[  # type: ignore[override]
            tuple[np.ndarray, ...], list[float], bool, bool, dict[str, Any]]:  # reward list
        """``actions``: one integer per agent, in agent order (a list, tuple or array)."""
        if len(actions) != self.n_agents:
            raise ValueError(f"{self.env_id}: expected {self.n_agents} actions (one per agent, "
                             f"in the order {self.agents}), got {len(actions)}")
        obs, rewards, terms, truncs, infos = self.face.step(
            dict(zip(self.agents, actions, strict=True)))
        agent = self.agents[0]
        info = self._info(infos)
        if truncs[agent]:
            info["episode_limit"] = True
        return (self._tuple(obs), [rewards[a] for a in self.agents], terms[agent],
                truncs[agent], info)

    def action_masks(self) -> np.ndarray:
        """The available actions after the last ``reset``/``step``: bool ``[n_agents,
        n_actions]``."""
        if self._masks is None:
            raise RuntimeError("action_masks() called before reset()")
        return self._masks.copy()

    def state(self) -> np.ndarray:
        """The global state (float32), as ``ParallelEnv.state()``."""
        return self.face.state()

    def render(self) -> np.ndarray | None:
        return self.face.render()

    def close(self) -> None:
        self.face.close()

    def _tuple(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        return tuple(obs[a] for a in self.agents)

    def _info(self, infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
        first = infos[self.agents[0]]
        self._masks = np.stack([infos[a]["action_mask"] for a in self.agents]).astype(bool)
        return {_RENAMED_INFO.get(k, k): v for k, v in first.items() if k != "action_mask"}


def _check(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ValueError(f"{name} must be {'true or false' if kind is bool else 'an integer'}, "
                         f"got {value!r}")


def foraging(players: int = 2, field_size: int | Sequence[int] = 8, max_num_food: int = 3,
             sight: int | None = None, force_coop: bool = False,
             grid_observation: bool = False, render_mode: str | None = None,
             **kwargs: Any) -> MultiAgentGymEnv:
    """``marl/Foraging-v1``: LBF of any layout, with ``lbforaging.ForagingEnv``'s keywords."""
    rows, cols = (field_size, field_size) if isinstance(field_size, int) else field_size
    for key, value in (("players", players), ("field_size", rows), ("field_size", cols),
                       ("max_num_food", max_num_food)):
        _check(key, value, int)
    if sight is not None:
        _check("sight", sight, int)
    _check("force_coop", force_coop, bool)
    _check("grid_observation", grid_observation, bool)
    name = (("grid-" if grid_observation else "") + (f"{sight}s-" if sight is not None else "")
            + f"{rows}x{cols}-{players}p-{max_num_food}f" + ("-coop" if force_coop else ""))
    return MultiAgentGymEnv(f"lbf:{name}", render_mode=render_mode, **kwargs)


def smac(map_name: str = "3m", render_mode: str | None = None,
         **kwargs: Any) -> MultiAgentGymEnv:
    """``marl/SMAC-v3``: the SMAC map ``map_name`` in the built-in simulator."""
    return MultiAgentGymEnv(f"smac:{map_name}", render_mode=render_mode, **kwargs)


def smacv2(race: str = "protoss", n_units: int = 5, n_enemies: int = 5,
           render_mode: str | None = None, **kwargs: Any) -> MultiAgentGymEnv:
    """``marl/SMACv2-v3``: a SMACv2-style generated battle (SMACv2's ``capability_config``
    names: ``n_units`` allies of ``race`` against ``n_enemies``)."""
    _check("n_units", n_units, int)
    _check("n_enemies", n_enemies, int)
    return MultiAgentGymEnv(f"smacv2:{race}_{n_units}_vs_{n_enemies}",
                            render_mode=render_mode, **kwargs)


def _named() -> Iterator[tuple[str, str]]:
    """(family prefix, name after the prefix) of every named id."""
    for s in range(5, 16):
        for p in range(2, 5):
            for f in range(1, 6):
                for sight in ("", "2s-"):
                    for coop in ("", "-coop"):
                        yield "lbf", f"{sight}{s}x{s}-{p}p-{f}f{coop}"
    for prefix in ("smac", "smacv2"):
        for name in families()[prefix].catalogue():
            yield prefix, name


def gym_id(env_id: str) -> str:
    """The gymnasium id of a registered environment id with a named gymnasium id, e.g.
    ``lbf:8x8-2p-3f`` → ``marl/Foraging-8x8-2p-3f-v1``."""
    prefix, _, name = env_id.partition(":")
    if prefix not in GYM_NAMES:
        raise ValueError(f"'{env_id}' has no gymnasium id; families with ids: "
                         f"{', '.join(f'{p}:' for p in GYM_NAMES)}")
    return f"{NAMESPACE}/{GYM_NAMES[prefix]}-{name}-v{families()[prefix].version}"


def register_ids() -> None:
    """Register every id with gymnasium (once; called when ``marl.envs`` is imported)."""
    entry = f"{__name__}:MultiAgentGymEnv"
    generic = {"lbf": "foraging", "smac": "smac", "smacv2": "smacv2"}
    for prefix, factory in generic.items():
        version = families()[prefix].version
        _register(f"{NAMESPACE}/{GYM_NAMES[prefix]}-v{version}", f"{__name__}:{factory}", {})
    for prefix, name in _named():
        _register(gym_id(f"{prefix}:{name}"), entry, {"env_id": f"{prefix}:{name}"})


def _register(gid: str, entry_point: str, kwargs: dict[str, Any]) -> None:
    if gid not in gymnasium.registry:
        gymnasium.register(id=gid, entry_point=entry_point, kwargs=kwargs,
                           disable_env_checker=True)  # list rewards upset its checker
