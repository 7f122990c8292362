"""Level scores: how much a task still has to teach the student (the teachers rank by them).

- **Positive value loss** (PLR, Jiang et al. 2021): the time average over an episode of
  ``max(A_t, 0)``, ``A_t`` the student's GAE advantages: large where the critic underestimates
  what the team can get.
- **MaxMC** (Robust PLR, Jiang et al. 2021b): the time average of ``R_max − V(s_t)``, ``R_max``
  the highest episode return ever seen on the level: large where the team once did better than
  it now expects to.
- **PAIRED's regret** (Dennis et al. 2020): ``max(max_k R_antagonist,k − mean_k
  R_protagonist,k, 0)`` over the episodes each team played on the level.

The student is a team; the scores use the team's value (the mean over agents of the critic's
values, and the team return), so one level has one score whatever the number of agents.
"""

from __future__ import annotations

import torch


def _episode_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Time average of ``values [T, n]`` over the steps ``mask [T, n]`` marks, per column."""
    mask = mask.to(values.dtype)
    return (values * mask).sum(0) / mask.sum(0).clamp(min=1.0)


def positive_value_loss(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[n]``: mean over each episode's steps of ``max(A_t, 0)`` (``advantages``, ``mask``:
    ``[T, n]``, one column per episode)."""
    return _episode_mean(advantages.clamp(min=0.0), mask)


def max_mc(values: torch.Tensor, mask: torch.Tensor, best_return: torch.Tensor) -> torch.Tensor:
    """``[n]``: mean over each episode's steps of ``best_return − V(s_t)`` (``values``,
    ``mask``: ``[T, n]``; ``best_return [n]``: the highest return seen on each level, this
    episode's included)."""
    return _episode_mean(best_return.unsqueeze(0) - values, mask)


def paired_regret(antagonist: torch.Tensor, protagonist: torch.Tensor) -> torch.Tensor:
    """``[n]``: ``max(max_k antagonist[:, k] − mean_k protagonist[:, k], 0)`` (returns
    ``[n, k]``: k episodes of each team on each of n levels)."""
    return (antagonist.max(-1).values - protagonist.mean(-1)).clamp(min=0.0)
