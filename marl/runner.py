"""Collecting experience from a ``VecEnv``: whole episodes for a replay, rollouts for PPO.

:class:`EpisodeRunner` fills an :class:`~marl.replay.EpisodeReplay`. It keeps one staging row
per environment copy (``[B, T(+1), ...]`` on the training device) and writes every step into it
with one indexed store per field. When copies finish, their rows go to the replay in one
indexed copy per field and are zeroed for the next episode. The policy's memory (recurrent
state, last action), the step counters and the episode statistics stay on the device; the one
host read per step is the list of finished copies, which decides whether anything goes to the
replay.

:class:`RolloutRunner` fills a :class:`~marl.rollout.RolloutBuffer` with ``T`` steps of every
copy; episodes continue across rollouts. The one host read per step is the list of copies
whose episode was truncated, whose kept final observations the critic then values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from marl.devices import on_device
from marl.learner import Memory, Policy, ReplayLearner, RolloutLearner
from marl.replay import EpisodeReplay
from marl.rollout import RolloutBuffer
from marl.spec import Obs, VecEnv


def _obs_to(obs: Obs, device: torch.device) -> Obs:
    return Obs(obs.obs.to(device), obs.state.to(device), obs.avail.to(device))


EPISODE = "episode_"  # Step.info entries with this prefix: a figure of each finished episode


@dataclass
class EpisodeStats:
    """Sums over finished episodes, on the device: read them only when logging. Besides
    return, length and ``won``, every ``Step.info["episode_<name>"]`` figure is averaged over
    the episodes that reported it."""

    count: torch.Tensor
    ret: torch.Tensor
    ret_sq: torch.Tensor
    length: torch.Tensor
    won: torch.Tensor
    has_won: bool = False
    figures: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @classmethod
    def zeros(cls, device: torch.device) -> EpisodeStats:
        z = torch.zeros((), dtype=torch.float64, device=device)
        return cls(z, z.clone(), z.clone(), z.clone(), z.clone())

    def add(self, done: torch.Tensor, ret: torch.Tensor, length: torch.Tensor,
            info: dict[str, torch.Tensor]) -> None:
        d = done.to(torch.float64)
        self.count += d.sum()
        self.ret += (ret * d).sum()
        self.ret_sq += (ret.square() * d).sum()
        self.length += (length * d).sum()
        won = info.get("won")
        if won is not None:
            self.has_won = True
            self.won += (won.to(d.device, torch.float64) * d).sum()
        for key, value in info.items():
            if key.startswith(EPISODE):
                zero = torch.zeros_like(self.count)
                total, count = self.figures.setdefault(key[len(EPISODE):], (zero, zero.clone()))
                total += (value.to(d.device, torch.float64) * d).sum()
                count += d.sum()

    def summary(self) -> dict[str, float]:
        """Mean/std of return, mean length and win rate (empty when no episode finished)."""
        n = float(self.count)
        if n == 0:
            return {}
        mean = float(self.ret) / n
        var = max(float(self.ret_sq) / n - mean * mean, 0.0)
        out = {"return_mean": mean, "return_std": var**0.5,
               "episode_length": float(self.length) / n, "episodes": n}
        if self.has_won:
            out["win_rate"] = float(self.won) / n
        for name, (total, count) in self.figures.items():
            if float(count) > 0:
                out[name] = float(total) / float(count)
        return out

    def take(self) -> dict[str, float]:
        """:meth:`summary`, then start the sums again from zero."""
        out = self.summary()
        for total in (self.count, self.ret, self.ret_sq, self.length, self.won):
            total.zero_()
        self.has_won = False
        self.figures = {}
        return out


STEP_FIELDS = ("obs", "state", "avail", "actions", "reward", "terminated")


class Runner:
    """What both runners share: the lifecycle (``start``, collect, ``take_stats``, checkpoint
    state) and the episodes in progress (observation, policy memory, step and return of every
    copy, and the environment's own state)."""

    def __init__(self, env: VecEnv, learner: Policy, device: torch.device) -> None:
        self.env, self.learner, self.device = env, learner, device
        b = env.num_envs
        self.t = torch.zeros(b, dtype=torch.long, device=device)
        self.ep_return = torch.zeros(b, device=device)
        self.stats = EpisodeStats.zeros(device)
        self.obs: Obs | None = None
        self.memory: Memory = {}

    def start(self, seed: int) -> None:
        """Reset every copy (seeded) and begin new episodes."""
        self.obs = _obs_to(self.env.reset(seed=seed), self.device)
        self.memory = self.learner.initial_memory(self.env.num_envs)
        self.t.zero_()
        self.ep_return.zero_()

    def _started(self) -> Obs:
        if self.obs is None:
            raise RuntimeError(f"{type(self).__name__}.collect() called before start()")
        return self.obs

    def take_stats(self) -> dict[str, float]:
        """Statistics of the episodes finished since the last call (one host read)."""
        return self.stats.take()

    def state_dict(self) -> dict[str, Any]:
        env_state = self.env.state_dict() if hasattr(self.env, "state_dict") else None
        return {"t": self.t.clone(), "ep_return": self.ep_return.clone(),
                "memory": self.memory, "obs": self._started().to_dict(), "env": env_state}

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Restore the episodes in progress; ``False`` when the env cannot be restored exactly
        (an env without ``state_dict``), in which case the caller restarts with ``start``."""
        if state["env"] is None or not hasattr(self.env, "load_state_dict"):
            return False
        self.env.load_state_dict(state["env"])
        self.t.copy_(state["t"])
        self.ep_return.copy_(state["ep_return"])
        self.memory = on_device(state["memory"], self.device)
        self.obs = _obs_to(Obs.from_dict(state["obs"]), self.device)
        return True


class EpisodeRunner(Runner):
    """Steps ``env`` with ``learner.act`` (exploring) and stores finished episodes in ``replay``.

    A replay field beyond the standard ones (``STEP_FIELDS``) is taken each step from the
    ``record`` that ``act`` returns (MANSA's switch bit); ``learner.observe(step)`` sees every
    step's result."""

    def __init__(self, env: VecEnv, learner: ReplayLearner, replay: EpisodeReplay,
                 device: torch.device) -> None:
        super().__init__(env, learner, device)
        self.learner: ReplayLearner = learner
        self.replay = replay
        b, t = env.num_envs, env.spec.episode_limit
        self.stage = {
            name: torch.zeros((b, t + 1 if f.per_state else t, *f.shape), dtype=f.dtype,
                              device=device)
            for name, f in replay.fields.items()
        }
        self.rows = torch.arange(b, device=device)
        self.recorded = [name for name in replay.fields if name not in STEP_FIELDS]

    def start(self, seed: int) -> None:
        super().start(seed)
        for v in self.stage.values():
            v.zero_()
        self._write_obs(self.rows, self.t, self._started())

    def _write_obs(self, rows: torch.Tensor, t: torch.Tensor, obs: Obs) -> None:
        self.stage["obs"][rows, t] = obs.obs.to(self.device)
        self.stage["state"][rows, t] = obs.state.to(self.device)
        self.stage["avail"][rows, t] = obs.avail.to(self.device)

    def collect(self, steps: int, t_env: int) -> int:
        """Run ``steps`` batched steps; returns how many episodes finished (and were stored)."""
        obs = self._started()
        finished = 0
        b = self.env.num_envs
        for i in range(steps):
            actions, self.memory, record = self.learner.act(obs, self.memory,
                                                            explore=True, t_env=t_env + i * b)
            step = self.env.step(actions)
            self.learner.observe(step)
            reward = step.reward.to(self.device)
            for name in self.recorded:
                self.stage[name][self.rows, self.t] = record[name]
            self.stage["actions"][self.rows, self.t] = actions
            self.stage["reward"][self.rows, self.t] = reward
            self.stage["terminated"][self.rows, self.t] = step.terminated.to(self.device)
            self.t += 1
            self._write_obs(self.rows, self.t, step.final_obs)
            self.ep_return += reward.sum(-1)
            done = step.done.to(self.device)
            ids = done.nonzero().squeeze(1)
            if ids.numel():
                finished += ids.numel()
                self.stats.add(done, self.ep_return, self.t, step.info)
                episodes = {name: v[ids] for name, v in self.stage.items()}
                episodes["length"] = self.t[ids]
                self.replay.insert(episodes)
                for v in self.stage.values():
                    v.index_fill_(0, ids, 0)
                self.t.index_fill_(0, ids, 0)
                self.ep_return.index_fill_(0, ids, 0.0)
                self.memory = self.learner.reset_memory(self.memory, done)
                new = step.obs
                self._write_obs(ids, self.t[ids], Obs(new.obs[ids], new.state[ids],
                                                      new.avail[ids]))
            self.obs = obs = _obs_to(step.obs, self.device)
        return finished

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "stage": {k: v.clone() for k, v in self.stage.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        if not super().load_state_dict(state):
            return False
        for name, v in state["stage"].items():
            self.stage[name].copy_(v)
        return True


class RolloutRunner(Runner):
    """Steps ``env`` with ``learner.rollout_step`` and writes rollouts into ``buffer``."""

    def __init__(self, env: VecEnv, learner: RolloutLearner, buffer: RolloutBuffer,
                 device: torch.device) -> None:
        if buffer.num_envs != env.num_envs:
            raise ValueError(f"RolloutRunner: the buffer holds {buffer.num_envs} copies, the "
                             f"environment has {env.num_envs}")
        super().__init__(env, learner, device)
        self.learner: RolloutLearner = learner
        self.buffer = buffer
        self.starts = torch.ones(env.num_envs, dtype=torch.bool, device=device)

    def start(self, seed: int) -> None:
        super().start(seed)
        self.starts.fill_(True)

    @torch.no_grad()
    def collect(self, t_env: int) -> int:
        """Fill the buffer with one rollout; returns how many episodes finished in it."""
        buf, learner, obs, memory = self.buffer, self.learner, self._started(), self.memory
        buf.start_memory, buf.t_env = memory, t_env
        finished = torch.zeros((), dtype=torch.long, device=self.device)
        for t in range(buf.steps):
            actions, memory, recorded = learner.rollout_step(obs, memory)
            step = self.env.step(actions)
            reward = step.reward.to(self.device)
            terminated = step.terminated.to(self.device)
            done = step.done.to(self.device)
            buf.store(t, {"obs": obs.obs, "state": obs.state, "avail": obs.avail,
                          "starts": self.starts, "actions": actions, "reward": reward,
                          "terminated": terminated, "done": done, **recorded})
            final_value = buf["final_value"][t]
            final_value.zero_()
            ids = (done & ~terminated).nonzero().squeeze(1)  # truncated: bootstrap
            if ids.numel():
                final = step.final_obs
                final_value[ids] = learner.value(_obs_to(
                    Obs(final.obs[ids], final.state[ids], final.avail[ids]), self.device))
            self.ep_return += reward.sum(-1)
            self.t += 1
            self.stats.add(done, self.ep_return, self.t, step.info)
            finished += done.sum()
            self.ep_return.masked_fill_(done, 0.0)
            self.t.masked_fill_(done, 0)
            memory = learner.reset_memory(memory, done)
            self.starts = done
            obs = _obs_to(step.obs, self.device)
        buf["value"][buf.steps] = learner.value(obs)
        self.obs, self.memory = obs, memory
        return int(finished)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "starts": self.starts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        if not super().load_state_dict(state):
            return False
        self.starts.copy_(state["starts"])
        return True


@torch.no_grad()
def evaluate(env: VecEnv, learner: Policy, episodes: int, seed: int) -> dict[str, torch.Tensor]:
    """Test returns of ``episodes`` episodes, the learner acting as it tests (greedy, or
    ε-greedy with a value-based learner's ``evaluation_epsilon``): each copy's first episode,
    in waves of ``env.num_envs`` copies. Returns ``return``, ``length`` (and ``won``, and each
    ``episode_<name>`` figure the environment reports) as ``[episodes]``."""
    b = env.num_envs
    out: dict[str, list[torch.Tensor]] = {"return": [], "length": [], "won": []}
    learner.seed_test(seed)
    wave = 0
    while sum(x.numel() for x in out["return"]) < episodes:
        obs = env.reset(seed=seed + wave)
        memory = learner.initial_memory(b)
        active = torch.ones(b, dtype=torch.bool, device=env.device)
        ret = torch.zeros(b, device=env.device)
        length = torch.zeros(b, dtype=torch.long, device=env.device)
        won = torch.zeros(b, dtype=torch.bool, device=env.device)
        has_won = False
        figures: dict[str, torch.Tensor] = {}
        for _ in range(env.spec.episode_limit):
            actions, memory, _ = learner.act(obs, memory, explore=False)
            step = env.step(actions)
            ret += step.reward.to(ret.device).sum(-1) * active
            length += active.long()
            if "won" in step.info:
                has_won = True
                won |= step.info["won"].to(won.device) & active
            ending = active & step.done.to(active.device)
            for key, value in step.info.items():
                if key.startswith(EPISODE):
                    kept = figures.setdefault(key, torch.zeros(b, device=env.device))
                    figures[key] = torch.where(ending, value.to(kept), kept)
            active &= ~step.done.to(active.device)
            obs = step.obs
            if not active.any():
                break
        take = min(b, episodes - sum(x.numel() for x in out["return"]))
        out["return"].append(ret[:take])
        out["length"].append(length[:take])
        if has_won:
            out["won"].append(won[:take])
        for key, value in figures.items():
            out.setdefault(key, []).append(value[:take])
        wave += 1
    result = {k: torch.cat(v) for k, v in out.items() if v}
    return result
