"""PAIRED's teacher: a policy that writes a task token by token, trained by PPO on regret.

The writer (Dennis et al. 2020; minimax's maze teacher: LSTM, noise 50, entropy 0.05, lr 1e-4)
is a recurrent policy over the task's ``length`` tokens: at step ``l`` it sees the token it
wrote at ``l − 1`` (a start token first) and a noise vector drawn once per task, and chooses
token ``l`` among ``vocab``; a value head estimates the task's regret. A task is one episode
whose only reward, at its end, is the regret the two student teams showed on it
(:func:`marl.algos.ued.scores.paired_regret`). Advantages are Monte Carlo (γ = λ = 1:
``regret − V_l``); PPO with clipping, ``epochs`` passes over the batch of tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class WriterConfig:
    hidden_dim: int = 128
    noise_dim: int = 50
    lr: float = 1e-4
    entropy_coef: float = 0.05
    epochs: int = 4
    clip: float = 0.2
    value_coef: float = 0.5
    grad_norm_clip: float = 0.5


@dataclass
class Written:
    """A batch of written tasks and what PPO needs to learn from it."""

    tokens: torch.Tensor  # [n, L] int64
    noise: torch.Tensor  # [n, Z]
    log_prob: torch.Tensor  # [n, L]
    value: torch.Tensor  # [n, L]


class TokenWriter(nn.Module):
    """The PAIRED teacher's policy and its PPO update (see the module card)."""

    def __init__(self, length: int, vocab: int, cfg: WriterConfig | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.length, self.vocab, self.cfg = length, vocab, cfg or WriterConfig()
        h, z = self.cfg.hidden_dim, self.cfg.noise_dim
        with torch.random.fork_rng(devices=[]):  # weights from the seed, not the global stream
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab + 1, h)  # index ``vocab``: the start token
            self.cell = nn.GRUCell(h + z, h)
            self.policy = nn.Linear(h, vocab)
            self.value = nn.Linear(h, 1)
        self.generator = torch.Generator().manual_seed(seed)
        self.optimiser = torch.optim.Adam(self.parameters(), lr=self.cfg.lr)

    def _unroll(self, tokens: torch.Tensor | None, noise: torch.Tensor,
                sample: bool) -> tuple[torch.Tensor, ...]:
        n = noise.shape[0]
        hidden = noise.new_zeros(n, self.cfg.hidden_dim)
        previous = torch.full((n,), self.vocab, dtype=torch.long)
        out_tokens, log_probs, entropies, values = [], [], [], []
        for step in range(self.length):
            hidden = self.cell(torch.cat([self.embed(previous), noise], -1), hidden)
            logits = torch.log_softmax(self.policy(hidden), -1)
            if sample:
                token = torch.multinomial(logits.exp(), 1, generator=self.generator).squeeze(1)
            else:
                assert tokens is not None
                token = tokens[:, step]
            out_tokens.append(token)
            log_probs.append(logits.gather(-1, token[:, None]).squeeze(1))
            entropies.append(-(logits.exp() * logits).sum(-1))
            values.append(self.value(hidden).squeeze(1))
            previous = token
        return (torch.stack(out_tokens, 1), torch.stack(log_probs, 1),
                torch.stack(entropies, 1), torch.stack(values, 1))

    @torch.no_grad()
    def write(self, n: int) -> Written:
        """``n`` new tasks."""
        noise = torch.rand(n, self.cfg.noise_dim, generator=self.generator)
        tokens, log_prob, _, value = self._unroll(None, noise, sample=True)
        return Written(tokens, noise, log_prob, value)

    def update(self, written: Written, regret: torch.Tensor) -> dict[str, torch.Tensor]:
        """PPO on the written tasks with their ``regret [n]`` as the episodes' reward."""
        cfg = self.cfg
        target = regret.to(written.value.dtype)[:, None].expand_as(written.value)
        advantage = target - written.value
        sums: dict[str, torch.Tensor] = {}
        for _ in range(cfg.epochs):
            _, log_prob, entropy, value = self._unroll(written.tokens, written.noise,
                                                       sample=False)
            ratio = (log_prob - written.log_prob).exp()
            surrogate = torch.min(ratio * advantage,
                                  ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * advantage)
            policy_loss = -surrogate.mean()
            value_loss = (value - target).square().mean()
            loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy.mean()
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.parameters(), cfg.grad_norm_clip)
            self.optimiser.step()
            for k, v in (("policy_loss", policy_loss), ("value_loss", value_loss),
                         ("entropy", entropy.mean())):
                sums[k] = sums.get(k, 0) + v.detach()
        metrics = {f"writer_{k}": v / cfg.epochs for k, v in sums.items()}
        metrics["regret_mean"] = regret.float().mean()
        return metrics

    def state_dict_all(self) -> dict[str, Any]:
        return {"net": self.state_dict(), "optimiser": self.optimiser.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict_all(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["net"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.generator.set_state(state["generator"])
