"""The batched environment protocol: what every environment, buffer and runner speaks.

Shapes (B copies, N agents):

- ``Obs.obs``   float ``[B, N, *obs_shape]``
- ``Obs.state`` float ``[B, *state_shape]``
- ``Obs.avail`` bool  ``[B, N, n_actions]``
- ``Step.reward`` float ``[B, N]``; ``terminated`` / ``truncated`` bool ``[B]``;
  ``info`` maps names to ``[B, ...]`` tensors.

Finished copies reset inside ``step`` ("same-step autoreset"): ``Step.obs`` is the first
observation of the new episode for those copies, and ``Step.final_obs`` the observation the
step reached before the reset, which is what a learner bootstraps from at truncation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a batched multi-agent environment."""

    n_agents: int
    obs_shape: tuple[int, ...]
    state_shape: tuple[int, ...]
    n_actions: int
    episode_limit: int
    agent_names: tuple[str, ...]
    action_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.agent_names) != self.n_agents:
            raise ValueError(
                f"EnvSpec: {len(self.agent_names)} agent names for n_agents={self.n_agents}"
            )
        if self.action_names and len(self.action_names) != self.n_actions:
            raise ValueError(
                f"EnvSpec: {len(self.action_names)} action names for n_actions={self.n_actions}"
            )


@dataclass
class Obs:
    """What the agents see after a reset or a step (all tensors on the env's device)."""

    obs: torch.Tensor
    state: torch.Tensor
    avail: torch.Tensor

    def to_dict(self) -> dict[str, torch.Tensor]:
        """Plain form, for checkpoints (which load with ``weights_only``: no classes)."""
        return {"obs": self.obs, "state": self.state, "avail": self.avail}

    @classmethod
    def from_dict(cls, data: dict[str, torch.Tensor]) -> Obs:
        """The inverse of :meth:`to_dict`."""
        return cls(data["obs"], data["state"], data["avail"])


@dataclass
class Step:
    """The result of one batched step; ``final_obs`` is ``obs`` before any autoreset."""

    obs: Obs
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_obs: Obs
    info: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def done(self) -> torch.Tensor:
        """``terminated | truncated``, bool ``[B]``."""
        return self.terminated | self.truncated


@runtime_checkable
class VecEnv(Protocol):
    """Any number of copies of a multi-agent environment stepped as one, on one device."""

    spec: EnvSpec
    num_envs: int
    device: torch.device

    def reset(self, *, seed: int | None = None) -> Obs: ...

    def step(self, actions: torch.Tensor) -> Step: ...
