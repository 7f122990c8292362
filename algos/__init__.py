"""Learners, found by name through an explicit registry.

Every learner offers ``act(obs, memory, explore, t_env) -> (actions, memory)``,
``update(batch) -> metrics``, ``state_dict()`` / ``load_state_dict()``. IQL, VDN and QMIX are one
Q-learner (:mod:`marl.algos.qlearner`) with different mixers, trained from an episode replay;
IPPO and MAPPO one PPO learner (:mod:`marl.algos.ppo`) with different critics, trained from
on-policy rollouts (``on_policy``); MANSA (:mod:`marl.algos.mansa`) composes an independent
and a centralised Q-learner with a switcher. Their defaults live in
``configs/algos/<name>.yaml``.

A replay learner may add replay fields of its own, recorded each step from its memory under
the same name, and an ``observe_step(step)`` method that sees every step's result (MANSA's
switch bit and on-policy switcher); a ``summary()`` method adds figures to a run's summary.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from marl.config import ConfigError
from marl.spec import EnvSpec


@dataclass(frozen=True)
class Algorithm:
    """A registered algorithm: its config class and how to build its learner."""

    name: str
    summary: str
    config: Callable[[], Any]
    make_learner: Callable[[EnvSpec, Any, torch.device, int], Any]
    on_policy: bool = False  # trained from fresh rollouts (RolloutBuffer), not a replay


_ALGOS: dict[str, Algorithm] = {}


def register_algorithm(algorithm: Algorithm) -> None:
    """Add ``algorithm`` to the registry; a name can be registered once."""
    if algorithm.name in _ALGOS:
        raise ValueError(f"algorithm {algorithm.name!r} is already registered")
    _ALGOS[algorithm.name] = algorithm


def algorithms() -> dict[str, Algorithm]:
    """Registered algorithms by name."""
    return dict(_ALGOS)


def get_algorithm(name: str) -> Algorithm:
    """The algorithm called ``name``; an unknown name lists the registered ones."""
    if name not in _ALGOS:
        near = difflib.get_close_matches(name, list(_ALGOS), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"unknown algorithm {name!r}.{hint} Registered: {', '.join(_ALGOS)}")
    return _ALGOS[name]


def _q_learner(spec: EnvSpec, cfg: Any, device: torch.device, seed: int) -> Any:
    from marl.algos.qlearner import QLearner

    return QLearner(spec, cfg, device=device, seed=seed)


def _q_config() -> Any:
    from marl.algos.qlearner import QLearnerConfig

    return QLearnerConfig()


for _name, _summary in (
    ("iql", "independent Q-learning: one Q-network per agent view, no mixer"),
    ("vdn", "value decomposition networks: team Q = sum of agent Qs"),
    ("qmix", "QMIX: monotonic hypernetwork mixer on the global state"),
):
    register_algorithm(Algorithm(_name, _summary, _q_config, _q_learner))


def _ppo_learner(spec: EnvSpec, cfg: Any, device: torch.device, seed: int) -> Any:
    from marl.algos.ppo import PPOLearner

    return PPOLearner(spec, cfg, device=device, seed=seed)


def _ippo_config() -> Any:
    from marl.algos.ppo import PPOConfig

    return PPOConfig(critic="obs")


def _mappo_config() -> Any:
    from marl.algos.ppo import PPOConfig

    return PPOConfig(critic="state")


register_algorithm(Algorithm("ippo", "independent PPO: each agent's critic values its own "
                             "observation", _ippo_config, _ppo_learner, on_policy=True))
register_algorithm(Algorithm("mappo", "multi-agent PPO: a centralised critic values the "
                             "global state", _mappo_config, _ppo_learner, on_policy=True))


def _mansa_learner(spec: EnvSpec, cfg: Any, device: torch.device, seed: int) -> Any:
    from marl.algos.mansa import MANSALearner

    return MANSALearner(spec, cfg, device=device, seed=seed)


def _mansa_config() -> Any:
    from marl.algos.mansa import MANSAConfig

    return MANSAConfig()


register_algorithm(Algorithm("mansa", "MANSA: independent learners, and a switcher that calls "
                             "centralised learning (QMIX) where it pays, under a budget",
                             _mansa_config, _mansa_learner))
