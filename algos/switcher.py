"""MANSA's switcher: at every step of every copy, decide whether the centralised learner acts.

A switcher sees features of the global situation (state, budget left, episode progress) and
returns a switch bit per copy. Where a CL call is not allowed (its budget is spent) the bit is
0, always. Three switchers share one interface (:meth:`decide`, :meth:`learn`) and one rollout
(:class:`SwitchRollout`): the switcher's experience is the team reward minus the cost ``c`` of
each CL call, which MANSA computes (the one place the cost enters); switchers never see ``c``.

- :class:`PPOSwitcher` (the default): a Bernoulli policy trained with PPO (clipped surrogate,
  GAE(λ), a value critic).
- :class:`DQNSwitcher`: Q-values of {IL, CL}; ε-greedy over them, one-step TD on each rollout.
- :class:`RandomSwitcher`: a CL call with a fixed probability (the baseline that tells whether
  *where* CL is used matters).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from marl.returns import gae


def decision_logp(p: torch.Tensor, switch: torch.Tensor) -> torch.Tensor:
    """Log-probability of the decisions ``switch`` taken with call probabilities ``p``."""
    return torch.where(switch, p.clamp(min=1e-12).log(), (1 - p).clamp(min=1e-12).log())


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of Bernoulli(σ(logits)) in nats, finite with finite gradients even where the
    probability saturates (0 where a logit is -inf: a forbidden call)."""
    h = -(torch.sigmoid(logits) * nn.functional.logsigmoid(logits)
          + torch.sigmoid(-logits) * nn.functional.logsigmoid(-logits))
    return torch.where(torch.isinf(logits), torch.zeros_like(h), h)


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, out))


@dataclass
class SwitchRollout:
    """``steps`` switcher transitions of ``copies`` copies (``[T, B, ...]``)."""

    feats: torch.Tensor  # [T, B, F]
    allowed: torch.Tensor  # [T, B] bool: a CL call was allowed
    switch: torch.Tensor  # [T, B] bool: the decision taken
    logp: torch.Tensor  # [T, B] its log-probability (PPO)
    reward: torch.Tensor  # [T, B] team reward minus the cost of the call
    terminated: torch.Tensor  # [T, B] bool
    done: torch.Tensor  # [T, B] bool: terminated or truncated
    next_feats: torch.Tensor  # [T, B, F] features of the next state (the final one at the end)
    next_allowed: torch.Tensor  # [T, B] bool
    filled: int = 0

    @classmethod
    def empty(cls, steps: int, copies: int, feat_dim: int,
              device: torch.device) -> SwitchRollout:
        def z(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(*shape, dtype=dtype, device=device)

        b = torch.bool
        return cls(z(steps, copies, feat_dim), z(steps, copies, dtype=b),
                   z(steps, copies, dtype=b), z(steps, copies), z(steps, copies),
                   z(steps, copies, dtype=b), z(steps, copies, dtype=b),
                   z(steps, copies, feat_dim), z(steps, copies, dtype=b))

    @property
    def steps(self) -> int:
        return self.feats.shape[0]

    def head(self, n: int) -> SwitchRollout:
        """The first ``n`` steps (views, not copies)."""
        return replace(self, filled=n, **{f.name: getattr(self, f.name)[:n]
                                          for f in fields(self) if f.name != "filled"})


class RandomSwitcher(nn.Module):
    """A CL call with probability ``rate`` wherever one is allowed."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def probability(self, feats: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        return torch.full(allowed.shape, self.rate, device=allowed.device) * allowed

    def learn(self, rollout: SwitchRollout) -> dict[str, torch.Tensor]:
        return {}


class PPOSwitcher(nn.Module):
    """A Bernoulli switching policy with a value critic, trained with PPO."""

    def __init__(self, feat_dim: int, hidden: int, *, lr: float, epochs: int, clip: float,
                 entropy_coef: float, gamma: float, gae_lambda: float,
                 grad_norm_clip: float) -> None:
        super().__init__()
        self.actor, self.critic = mlp(feat_dim, hidden, 1), mlp(feat_dim, hidden, 1)
        self.epochs, self.clip, self.entropy_coef = epochs, clip, entropy_coef
        self.gamma, self.gae_lambda, self.grad_norm_clip = gamma, gae_lambda, grad_norm_clip
        self.optimiser = torch.optim.Adam(self.parameters(), lr=lr)

    def logits(self, feats: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        return self.actor(feats).squeeze(-1).masked_fill(~allowed, float("-inf"))

    def probability(self, feats: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(feats, allowed))

    def _logp(self, logits: torch.Tensor, switch: torch.Tensor) -> torch.Tensor:
        # log σ(l) for a call, log σ(-l) otherwise; a forbidden call has l = -inf: log 1 = 0
        return torch.where(switch, nn.functional.logsigmoid(logits),
                           nn.functional.logsigmoid(-logits))

    def learn(self, r: SwitchRollout) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            value = self.critic(r.feats).squeeze(-1)
            next_value = self.critic(r.next_feats).squeeze(-1)
            adv, ret = gae(r.reward, value, next_value, r.terminated, r.done, self.gamma,
                           self.gae_lambda)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        metrics: dict[str, torch.Tensor] = {}
        for _ in range(self.epochs):
            logits = self.logits(r.feats, r.allowed)
            ratio = (self._logp(logits, r.switch) - r.logp).exp()
            policy_loss = -torch.minimum(ratio * adv, ratio.clamp(1 - self.clip, 1 + self.clip)
                                         * adv).mean()
            entropy = bernoulli_entropy(logits)
            value_loss = (self.critic(r.feats).squeeze(-1) - ret).square().mean()
            loss = policy_loss + 0.5 * value_loss - self.entropy_coef * entropy.mean()
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.parameters(), self.grad_norm_clip)
            self.optimiser.step()
            metrics = {"switcher_policy_loss": policy_loss.detach(),
                       "switcher_value_loss": value_loss.detach()}
        return metrics


class DQNSwitcher(nn.Module):
    """Q-values of {IL, CL}, ε-greedy; a forbidden call is never chosen."""

    def __init__(self, feat_dim: int, hidden: int, *, lr: float, epochs: int, gamma: float,
                 epsilon: float, target_tau: float, grad_norm_clip: float) -> None:
        super().__init__()
        self.q = mlp(feat_dim, hidden, 2)
        self.target = copy.deepcopy(self.q)
        self.epochs, self.gamma, self.epsilon = epochs, gamma, epsilon
        self.target_tau, self.grad_norm_clip = target_tau, grad_norm_clip
        self.optimiser = torch.optim.Adam(self.q.parameters(), lr=lr)

    def _values(self, net: nn.Module, feats: torch.Tensor,
                allowed: torch.Tensor) -> torch.Tensor:
        q = net(feats)
        cl = q[..., 1].masked_fill(~allowed, float("-inf"))
        return torch.stack([q[..., 0], cl], dim=-1)

    def probability(self, feats: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        greedy = self._values(self.q, feats, allowed).argmax(-1).float()
        return ((1 - self.epsilon) * greedy + self.epsilon / 2) * allowed

    def learn(self, r: SwitchRollout) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            best = self._values(self.target, r.next_feats, r.next_allowed).max(-1).values
            target = r.reward + self.gamma * (~r.terminated) * best
        loss = torch.zeros(())
        for _ in range(self.epochs):
            taken = self.q(r.feats).gather(-1, r.switch.long().unsqueeze(-1)).squeeze(-1)
            loss = (taken - target).square().mean()
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.q.parameters(), self.grad_norm_clip)
            self.optimiser.step()
        with torch.no_grad():
            for tp, p in zip(self.target.parameters(), self.q.parameters(), strict=True):
                tp.lerp_(p, self.target_tau)
        return {"switcher_q_loss": loss.detach()}


Switcher = PPOSwitcher | DQNSwitcher | RandomSwitcher
