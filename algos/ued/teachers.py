"""Teachers: who picks the task each copy of the environment plays next.

One interface (:class:`Teacher`): ``propose(n)`` gives tasks (token rows of the environment's
:class:`~marl.tasks.TaskSpace`) for ``n`` copies whose episodes start, and whether the student
learns from each (``learn``); ``update(tokens, scores, returns)`` takes the finished episodes'
level scores (:mod:`marl.algos.ued.scores`) and team returns.

- :class:`DomainRandomisation` (DR): uniform random tasks, all learned from.
- :class:`PrioritisedReplay`: PLR⊥ (robust prioritised level replay, Jiang et al. 2021b) and,
  with ``mutations > 0``, ACCEL (Parker-Holder et al. 2022). With probability
  ``replay_prob`` (once the buffer holds ``min_fill`` of its size) a copy replays a buffered
  level drawn from the replay distribution (:func:`replay_distribution`); otherwise it plays a
  new level: a random one, or under ACCEL, with probability ``replay_prob`` again, a mutation
  (``mutations`` token edits) of a level drawn from the replay distribution. ACCEL mutates the
  levels it has just replayed and plays those children in the cycle after the replay; drawing
  the parent from the same distribution when the child is due keeps ACCEL's ratio of children
  to random levels (``replay_prob : 1 − replay_prob``) without a queue of waiting children
  (a queue grows without bound: a child that equals a buffered level counts as a replay when
  it finishes and would spawn children of its own). A finished level's score replaces its
  buffered score; a new level enters the buffer while there is room, or in place of the lowest
  score it beats.
  Robust PLR (``robust=True``, the default): the student learns only from replayed levels; new
  levels are played only to be scored.

Staleness counts proposals: every proposed level advances the clock by one, and a buffered
level's staleness is the clock minus when it was last proposed (or inserted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from marl.tasks import TaskSpace


@dataclass
class Proposal:
    tokens: torch.Tensor  # [n, L] int64, the tasks
    learn: torch.Tensor  # [n] bool: the student learns from these episodes


class Teacher(Protocol):
    def propose(self, n: int) -> Proposal: ...

    def update(self, tokens: torch.Tensor, scores: torch.Tensor,
               returns: torch.Tensor) -> None: ...

    def best_return(self, tokens: torch.Tensor, returns: torch.Tensor) -> torch.Tensor: ...

    def metrics(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class DomainRandomisation:
    """Uniform random tasks (DR)."""

    def __init__(self, space: TaskSpace, seed: int = 0) -> None:
        self.space = space
        self.generator = torch.Generator().manual_seed(seed)

    def propose(self, n: int) -> Proposal:
        return Proposal(self.space.sample(n, self.generator), torch.ones(n, dtype=torch.bool))

    def update(self, tokens: torch.Tensor, scores: torch.Tensor, returns: torch.Tensor) -> None:
        """DR learns nothing from scores."""

    def best_return(self, tokens: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
        return returns

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def replay_distribution(scores: torch.Tensor, last_seen: torch.Tensor, filled: torch.Tensor,
                        clock: int, temperature: float, staleness: float) -> torch.Tensor:
    """PLR's replay probabilities over buffer slots: ``(1 − ρ) P_score + ρ P_stale`` with
    ``P_score ∝ (1 / rank)^(1 / temperature)`` (rank 1 = the highest score among the filled
    slots; ties ranked in slot order) and ``P_stale ∝ clock − last_seen`` (uniform over the
    filled slots when none is stale); 0 on empty slots."""
    probs = torch.zeros(scores.shape, dtype=torch.float64)
    idx = filled.nonzero().squeeze(1)
    if idx.numel() == 0:
        return probs
    s = scores[idx].to(torch.float64)
    order = torch.sort(-s, stable=True).indices  # best first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, len(idx) + 1)
    weight = (1.0 / rank.to(torch.float64)) ** (1.0 / temperature)
    p_score = weight / weight.sum()
    stale = (clock - last_seen[idx]).to(torch.float64).clamp(min=0.0)
    p_stale = stale / stale.sum() if stale.sum() > 0 else torch.full_like(p_score,
                                                                          1.0 / len(idx))
    probs[idx] = (1.0 - staleness) * p_score + staleness * p_stale
    return probs


@dataclass
class ReplayConfig:
    """PLR⊥ / ACCEL settings (minimax's maze defaults; ``mutations`` 0 is PLR⊥)."""

    buffer_size: int = 4000
    replay_prob: float = 0.5
    staleness: float = 0.3
    temperature: float = 0.3
    min_fill: float = 0.5
    robust: bool = True  # the student learns only from replayed levels
    mutations: int = 0  # ACCEL: token edits per mutated level (0: no mutation)

    def __post_init__(self) -> None:
        checks = (("buffer_size", self.buffer_size >= 1), ("mutations", self.mutations >= 0),
                  ("replay_prob", 0 <= self.replay_prob <= 1),
                  ("staleness", 0 <= self.staleness <= 1),
                  ("min_fill", 0 <= self.min_fill <= 1), ("temperature", self.temperature > 0))
        for name, ok in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range")


class PrioritisedReplay:
    """PLR⊥, and ACCEL with ``cfg.mutations > 0`` (see the module card)."""

    def __init__(self, space: TaskSpace, cfg: ReplayConfig | None = None, seed: int = 0) -> None:
        self.space, self.cfg = space, cfg or ReplayConfig()
        size, length = self.cfg.buffer_size, space.length
        self.generator = torch.Generator().manual_seed(seed)
        self.tokens = torch.zeros(size, length, dtype=torch.long)
        self.scores = torch.zeros(size, dtype=torch.float64)
        self.best = torch.full((size,), -float("inf"), dtype=torch.float64)
        self.last_seen = torch.zeros(size, dtype=torch.long)
        self.filled = torch.zeros(size, dtype=torch.bool)
        self.clock = 0
        self.replays = self.proposals = self.mutants = 0

    # --- the buffer -------------------------------------------------------------------------
    def _slot(self, row: torch.Tensor) -> int | None:
        match = (self.tokens == row).all(-1) & self.filled
        hit = match.nonzero()
        return int(hit[0, 0]) if hit.numel() else None

    def _ready(self) -> bool:
        return int(self.filled.sum()) >= max(1, round(self.cfg.min_fill * self.cfg.buffer_size))

    def _coin(self) -> bool:
        return float(torch.rand(1, generator=self.generator)) < self.cfg.replay_prob

    def _draw(self) -> int:
        probs = replay_distribution(self.scores, self.last_seen, self.filled, self.clock,
                                    self.cfg.temperature, self.cfg.staleness)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def propose(self, n: int) -> Proposal:
        rows, learn = [], []
        for _ in range(n):
            self.clock += 1
            self.proposals += 1
            ready = self._ready()
            replay = ready and self._coin()
            if replay:
                slot = self._draw()
                self.last_seen[slot] = self.clock
                rows.append(self.tokens[slot].clone())
                self.replays += 1
            elif ready and self.cfg.mutations and self._coin():
                parent = self.tokens[self._draw()][None]
                rows.append(self.space.mutate(parent, self.cfg.mutations, self.generator)[0])
                self.mutants += 1
            else:
                rows.append(self.space.sample(1, self.generator)[0])
            learn.append(replay or not self.cfg.robust)
        return Proposal(torch.stack(rows), torch.tensor(learn, dtype=torch.bool))

    def best_return(self, tokens: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
        """The highest return seen on each level (buffered best or this episode's)."""
        out = returns.to(torch.float64).clone()
        for i, row in enumerate(self.space.canonical(tokens)):
            slot = self._slot(row)
            if slot is not None:
                out[i] = max(float(out[i]), float(self.best[slot]))
        return out

    def update(self, tokens: torch.Tensor, scores: torch.Tensor, returns: torch.Tensor) -> None:
        """Score the finished levels (``tokens [n, L]``, ``scores [n]``, team ``returns [n]``)."""
        for row, score, ret in zip(self.space.canonical(tokens), scores.tolist(),
                                   returns.tolist(), strict=True):
            slot = self._slot(row)
            if slot is not None:
                self.scores[slot] = score
                self.best[slot] = max(float(self.best[slot]), ret)
                continue
            free = (~self.filled).nonzero()
            if free.numel():
                slot = int(free[0, 0])
            else:
                lowest = int(torch.argmin(self.scores))
                if score <= float(self.scores[lowest]):
                    continue
                slot = lowest
            self.tokens[slot], self.scores[slot], self.best[slot] = row, score, ret
            self.last_seen[slot], self.filled[slot] = self.clock, True

    def metrics(self) -> dict[str, float]:
        filled = self.filled
        return {"buffer_fill": float(filled.float().mean()),
                "replay_rate": self.replays / max(self.proposals, 1),
                "score_mean": float(self.scores[filled].mean()) if filled.any() else 0.0,
                "mutation_rate": self.mutants / max(self.proposals, 1)}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "tokens": self.tokens.clone(),
                "scores": self.scores.clone(), "best": self.best.clone(),
                "last_seen": self.last_seen.clone(), "filled": self.filled.clone(),
                "clock": self.clock, "replays": self.replays, "proposals": self.proposals,
                "mutants": self.mutants}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        for key in ("tokens", "scores", "best", "last_seen", "filled"):
            getattr(self, key).copy_(state[key])
        # a checkpoint from before ACCEL counted its mutations has none: PLR⊥ made none
        self.clock, self.replays, self.proposals, self.mutants = (
            state["clock"], state["replays"], state["proposals"], state.get("mutants", 0))
