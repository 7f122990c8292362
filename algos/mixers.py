"""Mixers that join per-agent Q-values into a team value: none (IQL), sum (VDN), QMIX.

Every mixer maps chosen per-agent values ``q [B, T, N]`` and the global state
``state [B, T, *state_shape]`` to ``[B, T, K]``: ``K = N`` for no mixer (each agent learns its
own TD target), ``K = 1`` for a team value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIXERS = ("none", "vdn", "qmix")


class VDNMixer(nn.Module):
    """Value decomposition networks: the team value is the sum of the agents' values."""

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return q.sum(dim=-1, keepdim=True)


def _hypernet(state_dim: int, out_dim: int, layers: int, embed: int) -> nn.Module:
    if layers == 1:
        return nn.Linear(state_dim, out_dim)
    if layers == 2:
        return nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, out_dim))
    raise ValueError(f"hypernet_layers must be 1 or 2, got {layers}")


class QMixer(nn.Module):
    """QMIX: a two-layer mixing network whose weights come from hypernetworks on the state.

    The weights pass through ``abs``, so the team value is monotonic (non-decreasing) in every
    agent's value and the greedy joint action is each agent's greedy action.
    """

    def __init__(self, n_agents: int, state_dim: int, *, embed_dim: int = 32,
                 hypernet_layers: int = 2, hypernet_embed: int = 64) -> None:
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = _hypernet(state_dim, embed_dim * n_agents, hypernet_layers, hypernet_embed)
        self.hyper_w2 = _hypernet(state_dim, embed_dim, hypernet_layers, hypernet_embed)
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.value = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(),
                                   nn.Linear(embed_dim, 1))

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        lead = q.shape[:-1]
        s = state.reshape(lead.numel(), -1)
        w1 = self.hyper_w1(s).abs().view(-1, self.n_agents, self.embed_dim)
        # [rows, 1, N] @ [rows, N, E] as a broadcast product: N is tiny, bmm's overhead is not
        hidden = F.elu((q.reshape(-1, self.n_agents, 1) * w1).sum(1) + self.hyper_b1(s))
        w2 = self.hyper_w2(s).abs()
        return ((hidden * w2).sum(-1, keepdim=True) + self.value(s)).view(*lead, 1)


def make_mixer(name: str, n_agents: int, state_dim: int, *, embed_dim: int = 32,
               hypernet_layers: int = 2, hypernet_embed: int = 64) -> nn.Module | None:
    """The mixer called ``name`` (one of :data:`MIXERS`); ``None`` for independent learners."""
    if name == "none":
        return None
    if name == "vdn":
        return VDNMixer()
    if name == "qmix":
        return QMixer(n_agents, state_dim, embed_dim=embed_dim, hypernet_layers=hypernet_layers,
                      hypernet_embed=hypernet_embed)
    raise ValueError(f"unknown mixer {name!r}; choose one of {', '.join(MIXERS)}")
