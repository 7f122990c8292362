"""Rollout buffer for policy-gradient methods: fixed-length rollouts of every copy, on device.

Layout, for ``T`` steps of ``B`` environment copies (``N`` agents):

- per-step fields ``[T, B, ...]`` (observations the actions were taken on, actions, their
  log-probabilities, rewards, ``terminated``/``done``, ...);
- per-state fields ``[T + 1, B, ...]`` (``value``): row ``T`` is the value of the observation
  the rollout stopped on, which the last step bootstraps from;
- ``start_memory``: the policy's memory (recurrent state ``[B, N, H]``) when the rollout began;
- ``learn [T, B]`` (bool, all True unless a curriculum clears it): the steps the learner may
  learn from. Robust PLR plays new tasks only to score them: their steps are False, and a
  learner weighs its losses by ``learn`` (values are still computed on every step).

Episodes run across rollout boundaries; ``starts [T, B]`` marks the steps where a new episode
began (the policy's memory was zero there), so a recurrent policy can be replayed over any
subset of copies from ``start_memory``. The buffer is written in place every rollout and read
whole by the learner; it allocates nothing after construction.
"""

from __future__ import annotations

import torch

from marl.replay import Field


class RolloutBuffer:
    """``steps`` steps of ``num_envs`` copies for the fields in ``fields``, on ``device``."""

    def __init__(self, fields: dict[str, Field], steps: int, num_envs: int, *,
                 device: str | torch.device = "cpu") -> None:
        if steps < 1 or num_envs < 1:
            raise ValueError(f"RolloutBuffer needs steps >= 1 and num_envs >= 1, got "
                             f"steps={steps}, num_envs={num_envs}")
        self.fields, self.steps, self.num_envs = dict(fields), steps, num_envs
        self.device = torch.device(device)
        self.data = {
            name: torch.zeros((steps + 1 if f.per_state else steps, num_envs, *f.shape),
                              dtype=f.dtype, device=self.device)
            for name, f in self.fields.items()
        }
        self.start_memory: dict[str, torch.Tensor] = {}
        self.learn = torch.ones(steps, num_envs, dtype=torch.bool, device=self.device)
        self.t_env = 0  # env steps taken before this rollout began (for learner schedules)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.data[name]

    def store(self, t: int, values: dict[str, torch.Tensor]) -> None:
        """Write row ``t`` of every field named in ``values`` (``[B, ...]`` each)."""
        for name, value in values.items():
            self.data[name][t] = value
