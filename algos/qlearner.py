"""One Q-learner for IQL, VDN and QMIX: agent Q-networks, a pluggable mixer, episode replay.

The update, in order (EPyMARL's ``QLearner`` maths, with the same defaults per algorithm):

1. team reward = sum of the agents' rewards, standardised by running statistics (optional);
2. Q-values of every step of the sampled episodes from the agent network (one batched call
   over batch × time × agents, over the episodes' real steps only, not their padding), and
   the same from the target network;
3. bootstrap value of the next state: double Q (the online network picks, the target network
   values) or plain max, over available actions only;
4. mix (none → each agent has its own TD error; VDN → sum; QMIX → monotonic hypernetwork mixer
   on the global state; real steps only), target values through the target mixer;
5. targets: one-step, or TD(λ) when ``td_lambda > 0``; termination stops bootstrapping,
   truncation does not (the replay keeps the final observation);
6. masked mean squared TD error, Adam, gradient-norm clipping;
7. target networks: hard copy every ``target_update_interval`` updates, or soft (τ) each update.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from marl.algos.mixers import MIXERS, make_mixer
from marl.config import require
from marl.nets import AgentNet, agent_inputs, input_dim, on_rows
from marl.replay import EpisodeBatch, Field
from marl.returns import td_lambda_targets
from marl.schedules import LinearSchedule
from marl.spec import EnvSpec, Obs, Step
from marl.stats import RunningMeanStd, masked_mean

OPTIMIZERS = ("adam", "rmsprop")


@dataclass
class QLearnerConfig:
    """Hyperparameters of the Q-learner (defaults: EPyMARL's QMIX; YAML files set the rest)."""

    mixer: str = "qmix"  # none (IQL) | vdn | qmix
    hidden_dim: int = 64  # width of the agent network
    use_rnn: bool = False  # GRU agent (True) or feed-forward (False)
    shared_params: bool = True  # one network for all agents, agent id in the input
    obs_agent_id: bool = True  # one-hot agent id in the input
    obs_last_action: bool = False  # one-hot previous action in the input
    lr: float = 0.0005  # learning rate
    optimizer: str = "adam"  # adam (EPyMARL) | rmsprop (PyMARL's original QMIX and VDN)
    optim_alpha: float = 0.99  # RMSprop's smoothing constant (PyMARL's)
    optim_eps: float = 0.00001  # RMSprop's epsilon (PyMARL's)
    gamma: float = 0.99  # discount
    epsilon_start: float = 1.0  # ε-greedy exploration, linear over epsilon_anneal_time steps
    epsilon_finish: float = 0.05
    epsilon_anneal_time: int = 50000
    evaluation_epsilon: float = 0.0  # ε of test acting (EPyMARL's key: its paper's LBF runs
    # tested IQL and QMIX with 0.05, where a greedy team can stall beside food for good)
    target_update_interval: int = 200  # hard target copy every this many updates ...
    target_tau: float = 0.0  # ... or, when > 0, soft update with this τ after every update
    double_q: bool = True  # online network picks the next action, target network values it
    td_lambda: float = 0.0  # 0: one-step targets; (0, 1]: TD(λ)
    standardise_rewards: bool = True  # standardise the team reward by running mean/std
    grad_norm_clip: float = 10.0
    mixing_embed_dim: int = 32  # QMIX mixing network width
    hypernet_layers: int = 2  # QMIX hypernetwork depth (1 or 2)
    hypernet_embed: int = 64  # QMIX hypernetwork hidden width

    def __post_init__(self) -> None:
        require(self.mixer in MIXERS, "mixer", self.mixer, f"one of {', '.join(MIXERS)}")
        for key in ("hidden_dim", "target_update_interval",
                    "mixing_embed_dim", "hypernet_embed"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require(self.hypernet_layers in (1, 2), "hypernet_layers", self.hypernet_layers, "1 or 2")
        require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer,
                f"one of {', '.join(OPTIMIZERS)}")
        require(0 <= self.optim_alpha < 1, "optim_alpha", self.optim_alpha, "a number in [0, 1)")
        require(self.optim_eps > 0, "optim_eps", self.optim_eps, "a number > 0")
        for key in ("lr", "grad_norm_clip"):
            require(getattr(self, key) > 0, key, getattr(self, key), "a number > 0")
        for key in ("gamma", "td_lambda", "target_tau", "epsilon_start", "epsilon_finish",
                    "evaluation_epsilon"):
            require(0 <= getattr(self, key) <= 1, key, getattr(self, key), "a number in [0, 1]")
        require(self.epsilon_anneal_time >= 0, "epsilon_anneal_time", self.epsilon_anneal_time,
                "an integer >= 0")


class QLearner:
    """Acts ε-greedily with per-agent Q-networks; learns from replayed episodes."""

    def __init__(self, spec: EnvSpec, cfg: QLearnerConfig, *, device: torch.device | str,
                 seed: int) -> None:
        self.spec, self.cfg, self.device = spec, cfg, torch.device(device)
        self.n_agents, self.n_actions = spec.n_agents, spec.n_actions
        self.obs_dim = math.prod(spec.obs_shape)
        state_dim = math.prod(spec.state_shape)
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG untouched
            torch.manual_seed(seed)
            self.agent = AgentNet(
                input_dim(self.obs_dim, self.n_agents, self.n_actions,
                          last_action=cfg.obs_last_action, agent_id=cfg.obs_agent_id),
                self.n_actions, self.n_agents, hidden_dim=cfg.hidden_dim, rnn=cfg.use_rnn,
                shared=cfg.shared_params,
            ).to(self.device)
            self.mixer = make_mixer(cfg.mixer, self.n_agents, state_dim,
                                    embed_dim=cfg.mixing_embed_dim,
                                    hypernet_layers=cfg.hypernet_layers,
                                    hypernet_embed=cfg.hypernet_embed)
        if self.mixer is not None:
            self.mixer.to(self.device)
        self.target_agent = copy.deepcopy(self.agent)
        self.target_mixer: nn.Module | None = copy.deepcopy(self.mixer)
        self.params = list(self.agent.parameters())
        if self.mixer is not None:
            self.params += list(self.mixer.parameters())
        if cfg.optimizer == "rmsprop":
            self.optimiser: torch.optim.Optimizer = torch.optim.RMSprop(
                self.params, lr=cfg.lr, alpha=cfg.optim_alpha, eps=cfg.optim_eps, foreach=True)
        else:
            self.optimiser = torch.optim.Adam(self.params, lr=cfg.lr, foreach=True)
        self.reward_stats = RunningMeanStd((), device=self.device)
        self.epsilon = LinearSchedule(cfg.epsilon_start, cfg.epsilon_finish,
                                      cfg.epsilon_anneal_time)
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(seed + 1)
        # test acting draws from its own stream, seeded by each test (seed_test), so a test
        # leaves training's draws as they were and is a function of the policy and its seed
        self.test_epsilon = cfg.evaluation_epsilon
        self.test_rng = torch.Generator(device=self.device)
        self.updates = 0

    # --- acting ----------------------------------------------------------------------------
    def replay_fields(self) -> dict[str, Field]:
        """What an episode of this learner's replay holds."""
        spec = self.spec
        return {
            "obs": Field((spec.n_agents, *spec.obs_shape), torch.float32, per_state=True),
            "state": Field(tuple(spec.state_shape), torch.float32, per_state=True),
            "avail": Field((spec.n_agents, spec.n_actions), torch.bool, per_state=True),
            "actions": Field((spec.n_agents,), torch.long),
            "reward": Field((spec.n_agents,), torch.float32),
            "terminated": Field((), torch.bool),
        }

    def initial_memory(self, batch: int) -> dict[str, torch.Tensor]:
        """Memory at an episode's start: recurrent state and last action (``-1`` = none)."""
        return {
            "hidden": self.agent.initial_memory(batch, self.device),
            "last_action": torch.full((batch, self.n_agents), -1, dtype=torch.long,
                                      device=self.device),
        }

    def reset_memory(self, memory: dict[str, torch.Tensor], done: torch.Tensor) -> dict:
        """Memory with the copies in bool ``done [B]`` back at an episode's start."""
        keep = ~done
        return {
            "hidden": memory["hidden"] * keep[:, None, None].to(memory["hidden"].dtype),
            "last_action": memory["last_action"].masked_fill(done[:, None], -1),
        }

    @torch.no_grad()
    def act(self, obs: Obs, memory: dict[str, torch.Tensor], *, explore: bool,
            t_env: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
        """Actions int64 ``[B, N]``: ε-greedy over available actions, ε on its schedule to
        explore, else ``test_epsilon`` (0: greedy); the new memory; nothing to record."""
        last = memory["last_action"] if self.cfg.obs_last_action else None
        x = agent_inputs(obs.obs.flatten(2), last, self.n_actions, self.cfg.obs_agent_id)
        q, hidden = self.agent(x, memory["hidden"])
        actions = q.masked_fill(~obs.avail, float("-inf")).argmax(-1)
        if explore or self.test_epsilon > 0:
            eps, rng = ((self.epsilon(t_env), self.rng) if explore
                        else (self.test_epsilon, self.test_rng))
            shape = actions.shape
            noise = torch.rand((*shape, self.n_actions), generator=rng, device=self.device)
            random_actions = noise.masked_fill(~obs.avail, -1.0).argmax(-1)
            explore_mask = torch.rand(shape, generator=rng, device=self.device) < eps
            actions = torch.where(explore_mask, random_actions, actions)
        return actions, {"hidden": hidden, "last_action": actions}, {}

    def seed_test(self, seed: int) -> None:
        self.test_rng.manual_seed(seed)

    def observe(self, step: Step) -> None:
        """Nothing to do: a Q-learner learns from the replay only."""

    # --- learning --------------------------------------------------------------------------
    def update(self, batch: EpisodeBatch,
               only: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One gradient step on a batch of episodes; returns metrics as 0-dim tensors.
        ``only [B, L]`` (bool) keeps the loss to those transitions (MANSA's centralised
        learner learns where it was called); targets still use whole episodes."""
        cfg = self.cfg
        actions = batch["actions"]  # [B, L, N]
        filled = batch["filled"]  # [B, L]
        terminated = batch["terminated"]  # [B, L]
        avail = batch["avail"]  # [B, L+1, N, A]
        reward = batch["reward"].sum(-1)  # team reward [B, L]
        if cfg.standardise_rewards:
            self.reward_stats.update(reward, filled)
            reward = self.reward_stats.standardise(reward)

        last = None
        if cfg.obs_last_action:
            none = torch.full_like(actions[:, :1], -1)
            last = torch.cat([none, actions], dim=1)  # [B, L+1, N]
        x = agent_inputs(batch["obs"].flatten(3), last, self.n_actions, cfg.obs_agent_id)
        states = batch["length"] + 1  # real states of each episode, the final one included
        q = self.agent.sequence(x, states)  # [B, L+1, N, A], 0 past an episode's end
        with torch.no_grad():
            target_q = self.target_agent.sequence(x, states)[:, 1:]
        with torch.no_grad():
            next_avail = avail[:, 1:]
            if cfg.double_q:
                pick = q.detach()[:, 1:].masked_fill(~next_avail, float("-inf")).argmax(-1)
            else:
                pick = target_q.masked_fill(~next_avail, float("-inf")).argmax(-1)
            # padding past an episode's end has no available action: value it 0, not -inf
            next_q = target_q.gather(-1, pick.unsqueeze(-1)).squeeze(-1)
            next_q = next_q.masked_fill(~next_avail.any(-1), 0.0)  # [B, L, N]
        chosen = q[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [B, L, N]

        if self.mixer is not None and self.target_mixer is not None:  # real steps only
            chosen = on_rows(self.mixer, filled, chosen, batch["state"][:, :-1])  # [B, L, 1]
            with torch.no_grad():
                next_q = on_rows(self.target_mixer, filled, next_q, batch["state"][:, 1:])
        mask = filled.unsqueeze(-1)
        targets = td_lambda_targets(reward.unsqueeze(-1), terminated.unsqueeze(-1), mask,
                                    next_q, cfg.gamma, cfg.td_lambda)
        td_error = chosen - targets.detach()
        if only is not None:
            mask = (filled & only).unsqueeze(-1)
        loss = masked_mean(td_error.square(), mask)

        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_norm_clip)
        self.optimiser.step()
        self.updates += 1
        self._update_targets()
        return {
            "loss": loss.detach(),
            "td_error_abs": masked_mean(td_error.detach().abs(), mask),
            "q_taken_mean": masked_mean(chosen.detach(), mask),
            "target_mean": masked_mean(targets, mask),
            "grad_norm": grad_norm.detach(),
        }

    def _update_targets(self) -> None:
        pairs: list[tuple[nn.Module, nn.Module]] = [(self.target_agent, self.agent)]
        if self.mixer is not None and self.target_mixer is not None:
            pairs.append((self.target_mixer, self.mixer))
        if self.cfg.target_tau > 0:
            with torch.no_grad():
                for target, online in pairs:
                    for tp, p in zip(target.parameters(), online.parameters(), strict=True):
                        tp.lerp_(p, self.cfg.target_tau)
        elif self.updates % self.cfg.target_update_interval == 0:
            for target, online in pairs:
                target.load_state_dict(online.state_dict())

    def exploration(self, t_env: int) -> dict[str, float]:
        """Exploration figures for the log at ``t_env``."""
        return {"epsilon": self.epsilon(t_env)}

    def summary(self) -> dict[str, float]:
        """No figures beyond the trainer's."""
        return {}

    # --- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "agent": self.agent.state_dict(),
            "target_agent": self.target_agent.state_dict(),
            "mixer": None if self.mixer is None else self.mixer.state_dict(),
            "target_mixer": (None if self.target_mixer is None
                             else self.target_mixer.state_dict()),
            "optimiser": self.optimiser.state_dict(),
            "reward_stats": self.reward_stats.state_dict(),
            "rng": self.rng.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.target_agent.load_state_dict(state["target_agent"])
        if self.mixer is not None and self.target_mixer is not None:
            self.mixer.load_state_dict(state["mixer"])
            self.target_mixer.load_state_dict(state["target_mixer"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.reward_stats.load_state_dict(state["reward_stats"])
        self.rng.set_state(state["rng"])
        self.updates = state["updates"]

