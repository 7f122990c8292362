"""CLUTR's teacher: one step in the latent space of a task VAE, trained by PPO on regret.

CLUTR (Azad et al. 2022) gives PAIRED's teacher a learned task manifold: a recurrent VAE
(:mod:`marl.algos.ued.rvae`), trained beforehand on random tasks, decodes latent points into
tasks; the teacher picks a point in one step. Here the teacher sees a noise vector (PAIRED's
teacher sees noise too), draws ``u ∈ [0, 1]^D`` from a Beta per dimension, and the point is
``z = −scale + 2·scale·u`` (:func:`to_latent`): the affine map onto the VAE's latent box
``[−scale, scale]^D``, which CLUTR's released code leaves out (it feeds ``u`` itself). Tasks are
decoded greedily, as a batch. The episode is one step: advantage ``reward − V``; PPO with
clipping, ``epochs`` passes. The reward is PAIRED's regret, or (``score="max_mc"``, an
ablation) the protagonist's MaxMC on the task.

``joint=True`` (an ablation CLUTR reports hurts) starts from an untrained VAE and trains it
alongside: ``vae_steps`` reconstruction steps on random tasks before every batch of tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.distributions import Beta


def to_latent(u: torch.Tensor, scale: float) -> torch.Tensor:
    """``u ∈ [0, 1]^D`` onto the VAE's latent box ``[−scale, scale]^D`` (0 → −scale, 1 →
    scale)."""
    return (2.0 * u - 1.0) * scale


@dataclass
class LatentTeacherConfig:
    hidden_dim: int = 128
    noise_dim: int = 50
    lr: float = 1e-4
    entropy_coef: float = 0.0
    epochs: int = 4
    clip: float = 0.2
    value_coef: float = 0.5
    grad_norm_clip: float = 0.5
    vae_steps: int = 10  # joint ablation: VAE steps per batch of tasks
    vae_batch: int = 64


@dataclass
class Chosen:
    """A batch of latent choices, their tasks, and what PPO needs."""

    tokens: torch.Tensor  # [n, L] int64, decoded
    u: torch.Tensor  # [n, D] in (0, 1)
    noise: torch.Tensor  # [n, Z]
    log_prob: torch.Tensor  # [n]
    value: torch.Tensor  # [n]


class LatentTeacher(nn.Module):
    """CLUTR's one-step teacher over a task VAE's latent box (see the module card)."""

    def __init__(self, vae: Any, space: Any, cfg: LatentTeacherConfig | None = None,
                 seed: int = 0, *, joint: bool = False) -> None:
        super().__init__()
        self.cfg = cfg or LatentTeacherConfig()
        self.vae, self.space, self.joint = vae, space, joint
        self.latent_dim = int(vae.cfg.latent_dim)
        self.scale = float(vae.cfg.latent_scale)
        h, d = self.cfg.hidden_dim, self.latent_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.body = nn.Sequential(nn.Linear(self.cfg.noise_dim, h), nn.Tanh(),
                                      nn.Linear(h, h), nn.Tanh())
            self.concentration = nn.Linear(h, 2 * d)
            self.value = nn.Linear(h, 1)
        self.generator = torch.Generator().manual_seed(seed)
        self.optimiser = torch.optim.Adam(
            [p for name, p in self.named_parameters() if not name.startswith("vae.")],
            lr=self.cfg.lr)
        self.vae_optimiser = (torch.optim.Adam(vae.parameters(), lr=vae.cfg.lr)
                              if joint else None)
        self.vae_updates = 0

    def _beta(self, noise: torch.Tensor) -> tuple[Beta, torch.Tensor]:
        x = self.body(noise)
        a, b = (nn.functional.softplus(self.concentration(x)) + 1.0).chunk(2, -1)
        return Beta(a, b), self.value(x).squeeze(-1)

    def _train_vae(self) -> None:
        assert self.vae_optimiser is not None
        cfg = self.vae.cfg
        for _ in range(self.cfg.vae_steps):
            tokens = self.space.sample(self.cfg.vae_batch, self.generator)
            weight = cfg.kl_weight_max * min(1.0, self.vae_updates / max(cfg.kl_anneal_steps, 1))
            recon, kl = self.vae.loss(tokens, self.generator)
            self.vae_optimiser.zero_grad(set_to_none=True)
            (self.vae.length * recon + weight * kl).backward()  # train_vae's objective
            self.vae_optimiser.step()
            self.vae_updates += 1

    def write(self, n: int) -> Chosen:
        """``n`` tasks: latent points chosen by the policy, decoded greedily."""
        if self.joint:
            self._train_vae()
        with torch.no_grad():
            noise = torch.rand(n, self.cfg.noise_dim, generator=self.generator)
            beta, value = self._beta(noise)
            # Beta sampling through the generator: u = X / (X + Y), X ~ Γ(a), Y ~ Γ(b)
            x = torch._standard_gamma(beta.concentration1.contiguous(), generator=self.generator)
            y = torch._standard_gamma(beta.concentration0.contiguous(), generator=self.generator)
            u = (x / (x + y)).clamp(1e-6, 1 - 1e-6)
            log_prob = beta.log_prob(u).sum(-1)
            tokens = self.vae.decode(to_latent(u, self.scale).clamp(-self.scale, self.scale))
        return Chosen(tokens, u, noise, log_prob, value)

    def update(self, chosen: Chosen, reward: torch.Tensor) -> dict[str, torch.Tensor]:
        """PPO on the one-step episodes with ``reward [n]`` (regret, or MaxMC)."""
        cfg = self.cfg
        target = reward.to(chosen.value.dtype)
        advantage = target - chosen.value
        sums: dict[str, torch.Tensor] = {}
        for _ in range(cfg.epochs):
            beta, value = self._beta(chosen.noise)
            log_prob = beta.log_prob(chosen.u).sum(-1)
            ratio = (log_prob - chosen.log_prob).exp()
            surrogate = torch.min(ratio * advantage,
                                  ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * advantage)
            policy_loss = -surrogate.mean()
            value_loss = (value - target).square().mean()
            entropy = beta.entropy().sum(-1).mean()
            loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([p for name, p in self.named_parameters()
                                      if not name.startswith("vae.")], cfg.grad_norm_clip)
            self.optimiser.step()
            for k, v in (("policy_loss", policy_loss), ("value_loss", value_loss),
                         ("entropy", entropy)):
                sums[k] = sums.get(k, 0) + v.detach()
        metrics = {f"writer_{k}": v / cfg.epochs for k, v in sums.items()}
        metrics["regret_mean"] = reward.float().mean()
        return metrics

    def state_dict_all(self) -> dict[str, Any]:
        state = {"net": self.state_dict(), "optimiser": self.optimiser.state_dict(),
                 "generator": self.generator.get_state(), "vae_updates": self.vae_updates}
        if self.vae_optimiser is not None:
            state["vae_optimiser"] = self.vae_optimiser.state_dict()
        return state

    def load_state_dict_all(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["net"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.generator.set_state(state["generator"])
        self.vae_updates = state["vae_updates"]
        if self.vae_optimiser is not None:
            self.vae_optimiser.load_state_dict(state["vae_optimiser"])
