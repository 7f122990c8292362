"""The built-in learners, registered with the core registry (:mod:`marl.algorithms`).

IQL, VDN and QMIX are one Q-learner (:mod:`marl.algos.qlearner`) with different mixers, trained
from an episode replay; IPPO and MAPPO one PPO learner (:mod:`marl.algos.ppo`) with different
critics, trained from on-policy rollouts (``on_policy``); MANSA (:mod:`marl.algos.mansa`)
composes an independent and a centralised Q-learner with a switcher. Each follows a contract of
:mod:`marl.learner`. Their defaults are their config dataclasses, with what differs in
``configs/algos/<name>.yaml``; the mixer (Q-learners) or critic (PPO) defines the algorithm.
"""

from __future__ import annotations

from typing import Any

import torch

from marl.algorithms import Algorithm, algorithms, get_algorithm, register_algorithm
from marl.spec import EnvSpec

__all__ = ["Algorithm", "algorithms", "get_algorithm", "register_algorithm"]


def _q_learner(spec: EnvSpec, cfg: Any, device: torch.device, seed: int) -> Any:
    from marl.algos.qlearner import QLearner

    return QLearner(spec, cfg, device=device, seed=seed)


def _q_config(mixer: str) -> Any:
    def config() -> Any:
        from marl.algos.qlearner import QLearnerConfig

        return QLearnerConfig(mixer=mixer)

    return config


for _name, _mixer, _summary in (
    ("iql", "none", "independent Q-learning: one Q-network per agent view, no mixer"),
    ("vdn", "vdn", "value decomposition networks: team Q = sum of agent Qs"),
    ("qmix", "qmix", "QMIX: monotonic hypernetwork mixer on the global state"),
):
    register_algorithm(Algorithm(_name, _summary, _q_config(_mixer), _q_learner,
                                 defines=("mixer",)))


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
                             "observation", _ippo_config, _ppo_learner, on_policy=True,
                             defines=("critic",)))
register_algorithm(Algorithm("mappo", "multi-agent PPO: a centralised critic values the "
                             "global state", _mappo_config, _ppo_learner, on_policy=True,
                             defines=("critic",)))


def _mansa_learner(spec: EnvSpec, cfg: Any, device: torch.device, seed: int) -> Any:
    from marl.algos.mansa import MANSALearner

    return MANSALearner(spec, cfg, device=device, seed=seed)


def _mansa_config() -> Any:
    from marl.algos.mansa import MANSAConfig

    return MANSAConfig()


register_algorithm(Algorithm("mansa", "MANSA: independent learners, and a switcher that calls "
                             "centralised learning (QMIX) where it pays, under a budget",
                             _mansa_config, _mansa_learner))
