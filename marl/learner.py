"""The learner contracts: what the runners and the trainer may ask of a learner, and nothing more.

Two kinds, told apart by the registry (``Algorithm.on_policy``):

- :class:`ReplayLearner` (IQL, VDN, QMIX, MANSA): acts step by step, its episodes go to an
  :class:`~marl.replay.EpisodeReplay` with the fields it declares, and it learns from replayed
  batches. The trainer owns the replay and the update schedule (``TrainConfig.replay``).
- :class:`RolloutLearner` (IPPO, MAPPO): fills a :class:`~marl.rollout.RolloutBuffer` of
  ``rollout_steps(num_envs)`` steps of every copy with the fields it declares (and refuses a
  copy count it cannot learn from), then learns from it.

Both are a :class:`Policy` (what evaluation and rendering use) with ``state_dict`` /
``load_state_dict``. The rules that keep the seams clean:

- ``act`` returns ``(actions, memory, record)``: ``record`` holds the learner's own replay
  fields for this step (e.g. MANSA's switch bit), so the runner stores what it is handed and
  never reads a learner's memory;
- ``initial_memory``, ``reset_memory`` and ``exploration`` have no side effects;
- ``seed_test(seed)`` seeds whatever test acting (``act(explore=False)``) draws at random, so a
  test is a function of the policy and its seed alone (``evaluate`` calls it before each test);
- ``observe(step)`` sees the result of every training step (a learner that learns on-policy
  from its own decisions records it there) and ``update`` is where learning happens;
- ``summary()`` adds the learner's own figures to a run's final JSON line.

A new learner implements one of the two protocols and registers an
:class:`~marl.algorithms.Algorithm`; nothing in ``marl/runner.py`` or ``marl/train.py`` changes.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from marl.replay import EpisodeBatch, Field
from marl.rollout import RolloutBuffer
from marl.spec import Obs, Step

Memory = dict[str, Any]  # tensors [B, ...], or nested dicts of them for composite learners
Metrics = dict[str, torch.Tensor]  # 0-dim tensors; the trainer averages them over updates


@runtime_checkable
class Policy(Protocol):
    """Acts in a batched environment: what ``evaluate`` and ``marl render`` need."""

    def initial_memory(self, batch: int) -> Memory: ...

    def reset_memory(self, memory: Memory, done: torch.Tensor) -> Memory: ...

    def act(self, obs: Obs, memory: Memory, *, explore: bool,
            t_env: int = 0) -> tuple[torch.Tensor, Memory, dict[str, torch.Tensor]]: ...

    def seed_test(self, seed: int) -> None: ...

    def exploration(self, t_env: int) -> dict[str, float]: ...

    def summary(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class ReplayLearner(Policy, Protocol):
    """Learns from replayed episodes; ``replay_fields`` beyond the step fields (obs, state,
    avail, actions, reward, terminated) come from ``act``'s ``record``."""

    def replay_fields(self) -> dict[str, Field]: ...

    def observe(self, step: Step) -> None: ...

    def update(self, batch: EpisodeBatch) -> Metrics: ...


@runtime_checkable
class RolloutLearner(Policy, Protocol):
    """Learns from on-policy rollouts it fills through ``rollout_step``."""

    def rollout_fields(self) -> dict[str, Field]: ...

    def rollout_steps(self, num_envs: int) -> int: ...

    def rollout_step(self, obs: Obs, memory: Memory) -> tuple[
        torch.Tensor, Memory, dict[str, torch.Tensor]]: ...

    def value(self, obs: Obs) -> torch.Tensor: ...

    def critic_reward(self, reward: torch.Tensor) -> torch.Tensor:
        """``reward`` in the units ``value`` counts (e.g. standardised)."""
        ...

    def update(self, buffer: RolloutBuffer) -> Metrics: ...
