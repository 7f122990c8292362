"""One PPO learner for IPPO and MAPPO: they differ only in what the critic sees.

- **IPPO**: the critic values each agent's own observation (``critic: obs``);
- **MAPPO**: the critic values the global state (``critic: state``), optionally made
  agent-specific with a one-hot agent id (``critic_agent_id``).

The actor is EPyMARL's agent network (feed-forward or GRU, shared or per-agent parameters,
optionally behind a convolutional encoder for image observations); its logits are masked to
the available actions. The critic is EPyMARL's three-layer MLP. The update, in order:

1. rewards: the team reward (sum over agents) for every agent (``common_reward``) or each
   agent's own; standardised by running statistics (``standardise_rewards``);
2. targets, with the values recorded while acting; truncated episodes bootstrap from their
   kept final observation, terminated ones do not:
   - ``returns: gae``: GAE(λ) advantages and λ-returns from the critic's values
     (:func:`marl.returns.gae`);
   - ``returns: nstep`` (EPyMARL's): ``nstep``-step returns bootstrapped from a *target*
     critic (soft-updated with ``target_tau`` after every update); the advantage is the return
     minus the current critic's value, recomputed in every minibatch
     (:func:`marl.returns.nstep_returns`);
3. ``epochs`` passes over the rollout in ``num_minibatches`` minibatches of whole copies (a
   recurrent actor is replayed from the memory the rollout began with, reset where episodes
   began), each: clipped surrogate + entropy bonus for the actor, squared error (optionally
   clipped around the recorded value) for the critic, one Adam step with the gradient norm
   of actor and critic each clipped to ``grad_norm_clip``;
4. options: advantage normalisation per minibatch, value normalisation (the critic predicts
   returns standardised by running statistics), linear learning-rate annealing.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from marl.config import ConfigError, require
from marl.logger import register_tags
from marl.nets import AgentNet, ConvEncoder, agent_inputs, input_dim
from marl.replay import Field
from marl.returns import gae, nstep_returns
from marl.rollout import RolloutBuffer
from marl.spec import EnvSpec, Obs
from marl.stats import RunningMeanStd

CRITICS = ("obs", "state")
ENCODERS = ("flat", "cnn")
RETURNS = ("gae", "nstep")

register_tags({
    "learner/policy_loss": "PPO clipped surrogate loss (mean over minibatch steps)",
    "learner/value_loss": "critic squared error (mean over minibatch steps)",
    "learner/entropy": "mean entropy of the policy over available actions",
    "learner/approx_kl": "approximate KL divergence between the rollout and updated policy",
    "learner/clip_fraction": "fraction of probability ratios outside the clip range",
    "learner/explained_variance": "1 - Var(returns - values) / Var(returns) of the rollout",
    "learner/advantage_mean": "mean advantage (before normalisation) over minibatch steps",
    "learner/critic_grad_norm": "critic gradient norm before clipping",
    "learner/lr": "learning rate of the last update",
})


@dataclass
class PPOConfig:
    """Hyperparameters of the PPO learner (defaults: EPyMARL's MAPPO; YAML files set the rest)."""

    critic: str = "state"  # what the critic sees: obs (IPPO) | state (MAPPO)
    critic_agent_id: bool = True  # one-hot agent id in the critic input
    hidden_dim: int = 128  # width of the actor network
    use_rnn: bool = True  # GRU actor (True) or feed-forward (False)
    critic_hidden_dim: int = 128  # width of the critic MLP
    shared_params: bool = True  # one actor and one critic for all agents
    obs_agent_id: bool = True  # one-hot agent id in the actor input
    encoder: str = "flat"  # observations: flat (vectors) | cnn (images [C, H, W])
    cnn_channels: int = 32  # channels of the convolutional encoder
    lr: float = 0.0003  # Adam learning rate of actor and critic
    lr_anneal_steps: int = 0  # anneal lr linearly to 0 over this many env steps; 0: constant
    gamma: float = 0.99  # discount
    returns: str = "nstep"  # targets: gae (GAE(λ)) | nstep (n-step, target critic; EPyMARL)
    gae_lambda: float = 0.95  # GAE λ (1: Monte-Carlo advantages, 0: one-step TD errors)
    nstep: int = 5  # rewards summed before bootstrapping, for returns=nstep
    target_tau: float = 0.01  # soft update of the target critic per update (returns=nstep)
    rollout_steps: int = 0  # steps of every copy per update; 0: the env's episode_limit
    epochs: int = 4  # passes over each rollout
    num_minibatches: int = 1  # minibatches per pass (split over env copies)
    clip: float = 0.2  # PPO ratio clip ε
    value_clip: float = 0.0  # clip the value change around the recorded value (gae); 0: off
    entropy_coef: float = 0.001  # entropy bonus weight
    normalise_advantages: bool = False  # standardise advantages in every minibatch
    value_norm: bool = False  # the critic predicts returns standardised by running stats
    standardise_rewards: bool = True  # standardise rewards by running mean/std
    common_reward: bool = True  # every agent learns from the team reward (sum over agents)
    grad_norm_clip: float = 10.0  # max gradient norm, for the actor and critic each

    def __post_init__(self) -> None:
        require(self.critic in CRITICS, "critic", self.critic, f"one of {', '.join(CRITICS)}")
        require(self.encoder in ENCODERS, "encoder", self.encoder,
                f"one of {', '.join(ENCODERS)}")
        require(self.returns in RETURNS, "returns", self.returns, f"one of {', '.join(RETURNS)}")
        require(self.value_clip == 0 or self.returns == "gae", "value_clip", self.value_clip,
                "0 with returns=nstep (values are recorded from the target critic there)")
        for key in ("hidden_dim", "critic_hidden_dim", "cnn_channels", "epochs",
                    "num_minibatches", "nstep"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        for key in ("rollout_steps", "lr_anneal_steps"):
            require(getattr(self, key) >= 0, key, getattr(self, key), "an integer >= 0")
        for key in ("lr", "grad_norm_clip", "clip"):
            require(getattr(self, key) > 0, key, getattr(self, key), "a number > 0")
        for key in ("gamma", "gae_lambda", "target_tau"):
            require(0 <= getattr(self, key) <= 1, key, getattr(self, key), "a number in [0, 1]")
        for key in ("value_clip", "entropy_coef"):
            require(getattr(self, key) >= 0, key, getattr(self, key), "a number >= 0")


class PPOLearner:
    """Samples actions from a masked categorical policy; learns from on-policy rollouts."""

    def __init__(self, spec: EnvSpec, cfg: PPOConfig, *, device: torch.device | str,
                 seed: int) -> None:
        self.spec, self.cfg, self.device = spec, cfg, torch.device(device)
        n, a = spec.n_agents, spec.n_actions
        self.n_agents, self.n_actions = n, a
        if cfg.encoder == "cnn" and len(spec.obs_shape) != 3:
            raise ConfigError(f"encoder='cnn' needs image observations [C, H, W]; this "
                              f"environment's observations are {tuple(spec.obs_shape)} "
                              "(use encoder=flat)", "encoder")
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG untouched
            torch.manual_seed(seed)
            self.actor_encoder = self._encoder()
            self.actor = AgentNet(
                input_dim(self._feature_dim(), n, a, last_action=False,
                          agent_id=cfg.obs_agent_id),
                a, n, hidden_dim=cfg.hidden_dim, rnn=cfg.use_rnn, shared=cfg.shared_params)
            if cfg.critic == "obs":
                self.critic_encoder = self._encoder()
                critic_in = self._feature_dim()
            else:
                self.critic_encoder = torch.nn.Identity()
                critic_in = math.prod(spec.state_shape)
            self.critic = AgentNet(
                critic_in + (n if cfg.critic_agent_id else 0), 1, n,
                hidden_dim=cfg.critic_hidden_dim, rnn=False, shared=cfg.shared_params)
        nets = (self.actor_encoder, self.actor, self.critic_encoder, self.critic)
        for net in nets:
            net.to(self.device)
        self.target_critic_encoder = copy.deepcopy(self.critic_encoder)
        self.target_critic = copy.deepcopy(self.critic)
        self.actor_params = [*self.actor_encoder.parameters(), *self.actor.parameters()]
        self.critic_params = [*self.critic_encoder.parameters(), *self.critic.parameters()]
        self.optimiser = torch.optim.Adam(
            [{"params": self.actor_params}, {"params": self.critic_params}], lr=cfg.lr,
            foreach=True)
        self.reward_stats = RunningMeanStd((), device=self.device)
        self.value_stats = RunningMeanStd((), device=self.device)
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(seed + 1)
        self.updates = 0

    def _encoder(self) -> torch.nn.Module:
        if self.cfg.encoder == "cnn":
            return ConvEncoder(self.spec.obs_shape, self.n_agents, channels=self.cfg.cnn_channels,
                               out_dim=self.cfg.hidden_dim, shared=self.cfg.shared_params)
        return torch.nn.Flatten(-len(self.spec.obs_shape))  # [..., N, *obs_shape] → [..., N, D]

    def _feature_dim(self) -> int:
        return self.cfg.hidden_dim if self.cfg.encoder == "cnn" else math.prod(self.spec.obs_shape)

    # --- networks --------------------------------------------------------------------------
    def _actor_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        return agent_inputs(self.actor_encoder(obs), None, self.n_actions, self.cfg.obs_agent_id)

    def _critic(self, obs: torch.Tensor, state: torch.Tensor, *,
                target: bool = False) -> torch.Tensor:
        """Critic output ``[..., N]`` (standardised when ``value_norm``) from ``obs
        [..., N, *obs_shape]`` (IPPO) or ``state [..., *state_shape]`` (MAPPO)."""
        encoder, critic = ((self.target_critic_encoder, self.target_critic) if target
                           else (self.critic_encoder, self.critic))
        if self.cfg.critic == "obs":
            x = encoder(obs)
        else:
            flat = state.flatten(state.dim() - len(self.spec.state_shape))
            x = flat.unsqueeze(-2).expand(*flat.shape[:-1], self.n_agents, flat.shape[-1])
        x = agent_inputs(x, None, self.n_actions, self.cfg.critic_agent_id)
        return critic(x, x.new_zeros(0))[0].squeeze(-1)

    def _denormalise(self, v: torch.Tensor) -> torch.Tensor:
        if not self.cfg.value_norm:
            return v
        return (v * torch.sqrt(self.value_stats.var + 1e-8) + self.value_stats.mean).to(v.dtype)

    @staticmethod
    def _masked_log_probs(logits: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        # a large finite number, not -inf, keeps p·log p at 0 for unavailable actions
        return F.log_softmax(logits.masked_fill(~avail, -1e9), dim=-1)

    # --- acting ----------------------------------------------------------------------------
    def rollout_fields(self) -> dict[str, Field]:
        """What a rollout of this learner holds (``value`` has the bootstrap row ``T``)."""
        spec = self.spec
        n = spec.n_agents
        return {
            "obs": Field((n, *spec.obs_shape), torch.float32),
            "state": Field(tuple(spec.state_shape), torch.float32),
            "avail": Field((n, spec.n_actions), torch.bool),
            "starts": Field((), torch.bool),
            "actions": Field((n,), torch.long),
            "log_prob": Field((n,), torch.float32),
            "value": Field((n,), torch.float32, per_state=True),
            "final_value": Field((n,), torch.float32),
            "reward": Field((n,), torch.float32),
            "terminated": Field((), torch.bool),
            "done": Field((), torch.bool),
        }

    def critic_reward(self, reward: torch.Tensor) -> torch.Tensor:
        """``reward`` in the units the critic's values count (standardised by the learner's
        running statistics when it standardises rewards), so that scores made of rewards and
        values (a curriculum's level scores) compare like with like."""
        return self.reward_stats.standardise(reward) if self.cfg.standardise_rewards else reward

    def rollout_steps(self, num_envs: int) -> int:
        """Steps of every copy in a rollout of ``num_envs`` copies (minibatches split them)."""
        if self.cfg.num_minibatches > num_envs:
            raise ConfigError(f"num_minibatches={self.cfg.num_minibatches} is not allowed: "
                              f"minibatches split the env copies, and num_envs={num_envs}",
                              "num_minibatches")
        return self.cfg.rollout_steps or self.spec.episode_limit

    def initial_memory(self, batch: int) -> dict[str, torch.Tensor]:
        return {"hidden": self.actor.initial_memory(batch, self.device)}

    def reset_memory(self, memory: dict[str, torch.Tensor], done: torch.Tensor) -> dict:
        """Memory with the copies in bool ``done [B]`` back at an episode's start."""
        return {"hidden": memory["hidden"] * (~done)[:, None, None].to(memory["hidden"].dtype)}

    @torch.no_grad()
    def value(self, obs: Obs) -> torch.Tensor:
        """The value ``[B, N]`` of ``obs`` (in return units) that targets bootstrap from: the
        critic's, or the target critic's for ``returns=nstep``."""
        target = self.cfg.returns == "nstep"
        return self._denormalise(self._critic(obs.obs, obs.state, target=target))

    @torch.no_grad()
    def rollout_step(self, obs: Obs, memory: dict[str, torch.Tensor]) -> tuple[
            torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Sampled actions ``[B, N]``, the new memory, and the ``log_prob`` and ``value``
        ``[B, N]`` a rollout records."""
        logits, hidden = self.actor(self._actor_inputs(obs.obs), memory["hidden"])
        log_probs = self._masked_log_probs(logits, obs.avail)
        gumbel = -torch.log(-torch.log(
            torch.rand(log_probs.shape, generator=self.rng, device=self.device)
            .clamp_(min=1e-20)))
        actions = (log_probs + gumbel).masked_fill(~obs.avail, float("-inf")).argmax(-1)
        log_prob = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return actions, {"hidden": hidden}, {"log_prob": log_prob, "value": self.value(obs)}

    @torch.no_grad()
    def act(self, obs: Obs, memory: dict[str, torch.Tensor], *, explore: bool,
            t_env: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
        """Actions int64 ``[B, N]``: sampled from the policy, or its mode when not exploring;
        the new memory; nothing recorded (rollouts record through :meth:`rollout_step`)."""
        if explore:
            actions, memory, _ = self.rollout_step(obs, memory)
            return actions, memory, {}
        logits, hidden = self.actor(self._actor_inputs(obs.obs), memory["hidden"])
        actions = logits.masked_fill(~obs.avail, float("-inf")).argmax(-1)
        return actions, {"hidden": hidden}, {}

    # --- learning --------------------------------------------------------------------------
    def update(self, rollout: RolloutBuffer) -> dict[str, torch.Tensor]:
        """``epochs`` × ``num_minibatches`` PPO steps on one rollout; returns mean metrics."""
        cfg = self.cfg
        n_copies = rollout.num_envs
        lr = cfg.lr
        if cfg.lr_anneal_steps:
            lr = cfg.lr * max(0.0, 1.0 - rollout.t_env / cfg.lr_anneal_steps)
            for group in self.optimiser.param_groups:
                group["lr"] = lr

        reward = rollout["reward"]  # [T, B, N]
        if cfg.common_reward:
            reward = reward.sum(-1, keepdim=True).expand_as(reward)
        if cfg.standardise_rewards:
            self.reward_stats.update(reward)
            reward = self.reward_stats.standardise(reward)
        values = rollout["value"]  # [T+1, B, N], return units
        done = rollout["done"].unsqueeze(-1)
        next_values = torch.where(done, rollout["final_value"], values[1:])
        terminated = rollout["terminated"].unsqueeze(-1)
        if cfg.returns == "gae":
            advantages, returns = gae(reward, values[:-1], next_values, terminated, done,
                                      cfg.gamma, cfg.gae_lambda)
        else:
            returns = nstep_returns(reward, values, next_values, terminated, done, cfg.gamma,
                                    cfg.nstep)
        if cfg.value_norm:
            self.value_stats.update(returns)
        old_values = values[:-1]

        obs, state, avail = rollout["obs"], rollout["state"], rollout["avail"]
        actions, old_log_prob = rollout["actions"], rollout["log_prob"]
        starts, memory0 = rollout["starts"], rollout.start_memory["hidden"]
        # steps a curriculum played only to score its task weigh nothing (robust PLR)
        learn = None if bool(rollout.learn.all()) else rollout.learn.float()
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        for _ in range(cfg.epochs):
            order = torch.randperm(n_copies, generator=self.rng, device=self.device)
            for idx in order.chunk(cfg.num_minibatches):
                if learn is not None and not bool(learn[:, idx].any()):
                    continue  # no step at all: Adam's momentum would still move the weights
                logits = self.actor.unroll(self._actor_inputs(obs[:, idx]), memory0[idx],
                                           starts[:, idx])
                log_probs = self._masked_log_probs(logits, avail[:, idx])
                log_prob = log_probs.gather(-1, actions[:, idx].unsqueeze(-1)).squeeze(-1)
                weight = None if learn is None else learn[:, idx, None].expand_as(log_prob)
                entropy = _mean(-(log_probs.exp() * log_probs).sum(-1), weight)
                log_ratio = log_prob - old_log_prob[:, idx]
                ratio = log_ratio.exp()
                v = self._critic(obs[:, idx], state[:, idx])
                if cfg.returns == "gae":
                    adv = advantages[:, idx]
                else:  # EPyMARL: the return minus the current critic's value
                    adv = returns[:, idx] - self._denormalise(v.detach())
                adv_mean = _mean(adv, weight)
                if cfg.normalise_advantages:
                    adv = (adv - adv_mean) / (adv.std() + 1e-8)
                surrogate = torch.min(ratio * adv,
                                      ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv)
                policy_loss = -_mean(surrogate, weight)

                target, v_old = returns[:, idx], old_values[:, idx]
                if cfg.value_norm:
                    target = self.value_stats.standardise(target)
                    v_old = self.value_stats.standardise(v_old)
                value_error = (v - target).square()
                if cfg.value_clip > 0:
                    v_clipped = v_old + (v - v_old).clamp(-cfg.value_clip, cfg.value_clip)
                    value_error = torch.max(value_error, (v_clipped - target).square())
                value_loss = _mean(value_error, weight)

                self.optimiser.zero_grad(set_to_none=True)
                (policy_loss - cfg.entropy_coef * entropy + value_loss).backward()
                actor_norm = torch.nn.utils.clip_grad_norm_(self.actor_params,
                                                            cfg.grad_norm_clip)
                critic_norm = torch.nn.utils.clip_grad_norm_(self.critic_params,
                                                             cfg.grad_norm_clip)
                self.optimiser.step()
                with torch.no_grad():
                    step = {
                        "policy_loss": policy_loss, "value_loss": value_loss,
                        "entropy": entropy,
                        "approx_kl": ((ratio - 1) - log_ratio).mean(),
                        "clip_fraction": ((ratio - 1).abs() > cfg.clip).float().mean(),
                        "grad_norm": actor_norm, "critic_grad_norm": critic_norm,
                        "advantage_mean": adv_mean,
                    }
                for k, x in step.items():
                    sums[k] = sums.get(k, 0) + x
                steps += 1
        if cfg.returns == "nstep":
            with torch.no_grad():
                for frozen, online in ((self.target_critic_encoder, self.critic_encoder),
                                       (self.target_critic, self.critic)):
                    for fp, p in zip(frozen.parameters(), online.parameters(), strict=True):
                        fp.lerp_(p, cfg.target_tau)
        self.updates += 1
        metrics = {k: x / max(steps, 1) for k, x in sums.items()}
        residual = (returns - old_values).var()
        metrics["explained_variance"] = 1 - residual / returns.var().clamp(min=1e-8)
        metrics["lr"] = torch.tensor(lr)
        return metrics

    def seed_test(self, seed: int) -> None:
        """Nothing to seed: a test plays the policy's mode."""

    def exploration(self, t_env: int) -> dict[str, float]:
        """PPO explores by sampling its policy: its entropy is logged with the update."""
        return {}

    def summary(self) -> dict[str, float]:
        """No figures beyond the trainer's."""
        return {}

    # --- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "actor_encoder": self.actor_encoder.state_dict(),
            "actor": self.actor.state_dict(),
            "critic_encoder": self.critic_encoder.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic_encoder": self.target_critic_encoder.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "reward_stats": self.reward_stats.state_dict(),
            "value_stats": self.value_stats.state_dict(),
            "rng": self.rng.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("actor_encoder", "actor", "critic_encoder", "critic",
                     "target_critic_encoder", "target_critic", "optimiser"):
            getattr(self, name).load_state_dict(state[name])
        self.reward_stats.load_state_dict(state["reward_stats"])
        self.value_stats.load_state_dict(state["value_stats"])
        self.rng.set_state(state["rng"])
        self.updates = state["updates"]


def _mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """The mean of ``x``, or its ``weight``-weighted mean (0 when nothing weighs)."""
    if weight is None:
        return x.mean()
    return (x * weight).sum() / weight.sum().clamp(min=1.0)
