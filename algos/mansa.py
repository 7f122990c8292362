"""MANSA (Mguni et al., ICML 2023): independent learners, and a switcher that decides at which
states to pay for centralised learning, under a budget of CL calls.

Two Q-learners share one episode replay: the independent learner (IL, IQL by default) and the
centralised learner (CL, QMIX by default; VDN works too). At every step of every copy the
switcher (:mod:`marl.algos.switcher`) looks at the global state, the budget left and the
episode's progress, and picks IL or CL:

- **one CL call** is one environment step of one copy at which the switcher picked CL: the
  joint action of that step comes from the centralised learner's agents (ε-greedy), and that
  transition is one the centralised learner trains on. Calls are counted exactly as they are
  made;
- **the budget**: at most ``budget_episode`` calls per episode of a copy and ``budget_run``
  over the whole run (all copies; -1 = no limit). A call the budget does not allow is masked
  out of the switcher's choice, so the budget holds always, not on average;
- **learning**: the replay records the switch bit. The IL learns from every transition, the
  CL only from the transitions where it was called (its TD targets still bootstrap along the
  whole episode); the switcher from the team reward minus ``switch_cost`` per call;
- **testing** is decentralised: the independent learners' greedy actions, no switcher.

Which parts follow the paper and which are our reconstruction: ``docs/algorithms/mansa.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from marl.algos.mixers import MIXERS
from marl.algos.qlearner import QLearner, QLearnerConfig
from marl.algos.switcher import (
    DQNSwitcher,
    PPOSwitcher,
    RandomSwitcher,
    Switcher,
    SwitchRollout,
    decision_logp,
)
from marl.config import learner_defaults, require
from marl.logger import register_tags
from marl.replay import EpisodeBatch, Field
from marl.spec import EnvSpec, Obs, Step

SWITCHERS = ("ppo", "dqn", "random")

register_tags({
    "explore/cl_fraction": "fraction of training steps (copies × steps) that called CL since "
                           "the run began",
    "explore/cl_calls_total": "CL calls since the run began",
    "explore/cl_budget_left": "CL calls the run budget still allows (-1: no run budget)",
    "learner/cl_calls_per_episode": "mean CL calls per training episode finished since the "
                                    "previous update",
    "learner/switcher_entropy": "mean entropy of the switcher's decisions since the previous "
                                "update (nats)",
    "learner/cl_loss": "centralised learner's TD loss on its calls (mean over its updates)",
    "learner/switcher_policy_loss": "PPO switcher's clipped surrogate loss",
    "learner/switcher_value_loss": "PPO switcher's critic loss",
    "learner/switcher_q_loss": "DQN switcher's TD loss",
})


def _registered(algo: str) -> Callable[[], QLearnerConfig]:
    """The registered defaults of ``algo`` (EPyMARL's, in configs/algos/<algo>.yaml)."""
    return lambda: learner_defaults(algo)


@dataclass
class MANSAConfig:
    """MANSA: the two learners, the switcher, the budget, and the shared replay."""

    il: QLearnerConfig = field(default_factory=_registered("iql"))  # independent learner
    cl: QLearnerConfig = field(default_factory=_registered("qmix"))  # centralised (or vdn)
    switch_cost: float = 0.05  # c: the switcher's reward loses c per CL call
    budget_episode: int = -1  # CL calls allowed per episode of a copy; -1 = no limit
    budget_run: int = -1  # CL calls allowed over the whole run; -1 = no limit
    switcher: str = "ppo"  # ppo | dqn | random
    random_rate: float = 0.05  # switcher=random: probability of a call where one is allowed
    switcher_hidden_dim: int = 64
    switcher_lr: float = 0.0003
    switcher_rollout: int = 32  # steps of every copy per switcher update
    switcher_epochs: int = 4
    switcher_clip: float = 0.2  # PPO
    switcher_entropy_coef: float = 0.01  # PPO
    switcher_epsilon: float = 0.05  # DQN exploration
    switcher_target_tau: float = 0.05  # DQN soft target update
    switcher_gamma: float = 0.99
    switcher_gae_lambda: float = 0.95
    grad_norm_clip: float = 10.0  # the switcher's

    def __post_init__(self) -> None:
        require(self.il.mixer == "none", "il.mixer", self.il.mixer,
                "none (the independent learner has no mixer)")
        require(self.cl.mixer in MIXERS and self.cl.mixer != "none", "cl.mixer", self.cl.mixer,
                "a mixer: vdn or qmix")
        require(self.switcher in SWITCHERS, "switcher", self.switcher,
                f"one of {', '.join(SWITCHERS)}")
        require(self.switch_cost >= 0, "switch_cost", self.switch_cost, "a number >= 0")
        for key in ("budget_episode", "budget_run"):
            require(getattr(self, key) >= -1, key, getattr(self, key),
                    "an integer >= 0, or -1 for no limit")
        require(0 <= self.random_rate <= 1, "random_rate", self.random_rate, "in [0, 1]")
        for key in ("switcher_hidden_dim", "switcher_rollout", "switcher_epochs"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        for key in ("switcher_lr", "grad_norm_clip"):
            require(getattr(self, key) > 0, key, getattr(self, key), "a number > 0")
        for key in ("switcher_gamma", "switcher_gae_lambda", "switcher_epsilon",
                    "switcher_target_tau", "switcher_clip"):
            require(0 <= getattr(self, key) <= 1, key, getattr(self, key), "in [0, 1]")


class MANSALearner:
    """An independent and a centralised Q-learner, and the switcher between them."""

    def __init__(self, spec: EnvSpec, cfg: MANSAConfig, *, device: torch.device | str,
                 seed: int) -> None:
        self.spec, self.cfg, self.device = spec, cfg, torch.device(device)
        # the IL gets the seed an IQL run would: with no CL call, MANSA *is* that IQL run
        self.il = QLearner(spec, cfg.il, device=self.device, seed=seed)
        self.cl = QLearner(spec, cfg.cl, device=self.device, seed=seed + 7919)
        self.feat_dim = math.prod(spec.state_shape) + 3
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 15485863)
            self.switcher: Switcher = self._make_switcher().to(self.device)
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(seed + 3)
        self.rollout: SwitchRollout | None = None  # made at the first act (knows the copies)
        self._last: dict[str, torch.Tensor] = {}  # the step in flight, for observe
        z = torch.zeros((), dtype=torch.float64, device=self.device)
        self.calls_total, self.steps_total = z.clone(), z.clone()
        self.window = {"steps": z.clone(), "entropy": z.clone(), "episodes": z.clone(),
                       "episode_calls": z.clone()}  # since the last update

    def _make_switcher(self) -> Switcher:
        c = self.cfg
        if c.switcher == "random":
            return RandomSwitcher(c.random_rate)
        if c.switcher == "dqn":
            return DQNSwitcher(self.feat_dim, c.switcher_hidden_dim,
                               lr=c.switcher_lr, epochs=c.switcher_epochs,
                               gamma=c.switcher_gamma, epsilon=c.switcher_epsilon,
                               target_tau=c.switcher_target_tau,
                               grad_norm_clip=c.grad_norm_clip)
        return PPOSwitcher(self.feat_dim, c.switcher_hidden_dim, lr=c.switcher_lr,
                           epochs=c.switcher_epochs, clip=c.switcher_clip,
                           entropy_coef=c.switcher_entropy_coef, gamma=c.switcher_gamma,
                           gae_lambda=c.switcher_gae_lambda, grad_norm_clip=c.grad_norm_clip)

    # --- budget and features ---------------------------------------------------------------
    def budget_left(self) -> int:
        """CL calls the run budget still allows (-1: no run budget)."""
        if self.cfg.budget_run < 0:
            return -1
        return self.cfg.budget_run - int(self.calls_total)

    def _allowed(self, used: torch.Tensor) -> torch.Tensor:
        """Copies whose episode budget allows a call ``[B]`` (the run budget is applied to the
        decisions, in copy order, in :meth:`act`)."""
        ok = torch.ones_like(used, dtype=torch.bool)
        if self.cfg.budget_episode >= 0:
            ok &= used < self.cfg.budget_episode
        if self.cfg.budget_run >= 0:
            ok &= self.calls_total < self.cfg.budget_run
        return ok

    def _features(self, state: torch.Tensor, used: torch.Tensor,
                  t: torch.Tensor) -> torch.Tensor:
        """Switcher input: the state, the fractions of the episode and run budgets left (1
        without a budget) and the episode's progress."""
        def left(spent: torch.Tensor, budget: int) -> torch.Tensor:
            if budget < 0:
                return torch.ones_like(spent, dtype=torch.float32)
            return (1 - spent.float() / max(budget, 1)).clamp(min=0)

        progress = t.float() / self.spec.episode_limit
        run = left(self.calls_total, self.cfg.budget_run).expand_as(progress)
        return torch.cat([state.flatten(1).float(),
                          torch.stack([left(used, self.cfg.budget_episode), run, progress],
                                      -1)], -1)

    # --- acting ----------------------------------------------------------------------------
    def replay_fields(self) -> dict[str, Field]:
        return {**self.il.replay_fields(), "switch": Field((), torch.bool)}

    def initial_memory(self, batch: int) -> dict[str, Any]:
        zeros = torch.zeros(batch, dtype=torch.long, device=self.device)
        return {"il": self.il.initial_memory(batch), "cl": self.cl.initial_memory(batch),
                "used": zeros, "t": zeros.clone()}

    def reset_memory(self, memory: dict[str, Any], done: torch.Tensor) -> dict[str, Any]:
        return {"il": self.il.reset_memory(memory["il"], done),
                "cl": self.cl.reset_memory(memory["cl"], done),
                "used": memory["used"] * ~done, "t": memory["t"] * ~done}

    @torch.no_grad()
    def act(self, obs: Obs, memory: dict[str, Any], *, explore: bool,
            t_env: int = 0) -> tuple[torch.Tensor, dict[str, Any], dict[str, torch.Tensor]]:
        """Joint actions ``[B, N]``: the CL's where the switcher calls it, else the IL's; the
        switch bit is recorded. Not exploring (testing): the IL's greedy actions."""
        il_actions, il_memory, _ = self.il.act(obs, memory["il"], explore=explore, t_env=t_env)
        if not explore:
            return il_actions, {**memory, "il": il_memory}, {}
        used, t = memory["used"], memory["t"]
        feats = self._features(obs.state, used, t)
        allowed = self._allowed(used)
        if self.rollout is None:
            self.rollout = SwitchRollout.empty(self.cfg.switcher_rollout + self.spec.episode_limit,
                                               len(used), self.feat_dim, self.device)
        p = self.switcher.probability(feats, allowed)
        wanted = (torch.rand(p.shape, generator=self.rng, device=self.device) < p) & allowed
        switch = wanted
        if self.cfg.budget_run >= 0:  # the last calls of the run go to the first copies
            left = self.cfg.budget_run - self.calls_total
            switch = wanted & (wanted.cumsum(0) <= left)
        # a recurrent CL acts every step to keep its memory; a feed-forward one only when called
        cl_memory = memory["cl"]
        actions = il_actions
        if self.cfg.cl.use_rnn or bool(switch.any()):
            cl_actions, cl_memory, _ = self.cl.act(obs, memory["cl"], explore=True, t_env=t_env)
            actions = torch.where(switch[:, None], cl_actions, il_actions)
        # both learners' memories carry the action actually taken
        il_memory = {**il_memory, "last_action": actions}
        cl_memory = {**cl_memory, "last_action": actions}
        calls = switch.sum()
        self.calls_total += calls
        self.steps_total += switch.numel()
        self.window["entropy"] += -(torch.special.xlogy(p, p)
                                    + torch.special.xlogy(1 - p, 1 - p)).sum()
        self.window["steps"] += switch.numel()
        r, i = self.rollout, self.rollout.filled
        used = used + switch
        if i < r.steps:  # a full rollout waits for the next update; its decisions are not kept
            r.feats[i], r.allowed[i], r.switch[i] = feats, allowed, switch
            r.logp[i] = decision_logp(p, switch)
        self._last = {"used": used, "t": t + 1}
        return actions, {"il": il_memory, "cl": cl_memory, "used": used, "t": t + 1}, {
            "switch": switch}

    def observe(self, step: Step) -> None:
        """The result of the step :meth:`act` chose: the switcher's reward (the team reward
        minus ``switch_cost`` per call: the one place the cost enters), the features it led
        to, and the calls of the episodes that ended."""
        if self.rollout is None or not self._last:
            return
        r, i = self.rollout, self.rollout.filled
        done = step.done.to(self.device)
        self.window["episodes"] += done.sum()
        self.window["episode_calls"] += (self._last["used"] * done).sum()
        if i == r.steps:
            self._last = {}
            return
        team = step.reward.to(self.device).sum(-1)
        r.reward[i] = team - self.cfg.switch_cost * r.switch[i]
        r.terminated[i] = step.terminated.to(self.device)
        r.done[i] = done
        # where the episode goes on, the final observation is the next step's: these are the
        # features the next decision sees
        r.next_feats[i] = self._features(step.final_obs.state.to(self.device),
                                         self._last["used"], self._last["t"])
        r.next_allowed[i] = self._allowed(self._last["used"])
        r.filled = i + 1
        self._last = {}

    # --- learning --------------------------------------------------------------------------
    def update(self, batch: EpisodeBatch) -> dict[str, torch.Tensor]:
        """An IL update on every transition and, when the batch holds CL calls, a CL update
        on those; the switcher's update once its rollout holds ``switcher_rollout`` steps;
        and the switcher's figures since the last update."""
        metrics = self.il.update(batch)
        called = batch["switch"] & batch["filled"]
        if bool(called.any()):
            metrics["cl_loss"] = self.cl.update(batch, only=called)["loss"]
        r = self.rollout
        if r is not None and r.filled >= self.cfg.switcher_rollout:
            metrics.update(self.switcher.learn(r.head(r.filled)))
            r.filled = 0
        w = self.window
        if bool(w["steps"] > 0):
            metrics["switcher_entropy"] = (w["entropy"] / w["steps"]).float()
        if bool(w["episodes"] > 0):
            metrics["cl_calls_per_episode"] = (w["episode_calls"] / w["episodes"]).float()
        for v in w.values():
            v.zero_()
        return metrics

    def seed_test(self, seed: int) -> None:
        """A test plays the IL alone (:meth:`act`)."""
        self.il.seed_test(seed)

    def exploration(self, t_env: int) -> dict[str, float]:
        """ε of the IL, the CL calls so far, the run budget left, and the fraction of steps
        that called CL since the run began."""
        steps = float(self.steps_total)
        out = {**self.il.exploration(t_env), "cl_calls_total": float(self.calls_total),
               "cl_budget_left": float(self.budget_left())}
        if steps:
            out["cl_fraction"] = float(self.calls_total) / steps
        return out

    def summary(self) -> dict[str, float]:
        """Run figures for the final JSON line."""
        steps = float(self.steps_total)
        return {"cl_calls": int(self.calls_total),
                "cl_fraction": float(self.calls_total) / steps if steps else 0.0}

    # --- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        optimiser = getattr(self.switcher, "optimiser", None)
        return {"il": self.il.state_dict(), "cl": self.cl.state_dict(),
                "switcher": self.switcher.state_dict(),
                "switcher_optimiser": None if optimiser is None else optimiser.state_dict(),
                "rng": self.rng.get_state(),
                "rollout": None if self.rollout is None else vars(self.rollout).copy(),
                "last": self._last,
                "calls_total": self.calls_total, "steps_total": self.steps_total,
                "window": self.window}

    def load_state_dict(self, state: dict) -> None:
        self.il.load_state_dict(state["il"])
        self.cl.load_state_dict(state["cl"])
        self.switcher.load_state_dict(state["switcher"])
        optimiser = getattr(self.switcher, "optimiser", None)
        if state["switcher_optimiser"] is not None and optimiser is not None:
            optimiser.load_state_dict(state["switcher_optimiser"])
        self.rng.set_state(state["rng"])
        self.rollout = None if state["rollout"] is None else SwitchRollout(**state["rollout"])
        self._last = state["last"]
        self.calls_total.copy_(state["calls_total"])
        self.steps_total.copy_(state["steps_total"])
        for k, v in state["window"].items():
            self.window[k].copy_(v)
