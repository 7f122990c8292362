"""The one training loop, with tests, logging and checkpoints, for every learner.

What an iteration collects and learns from depends on the learner:

- **replay** learners (:class:`ReplayTraining`): one batched environment step for every copy
  (finished episodes go to the replay), then the updates owed (``updates_per_episode`` per
  finished episode, EPyMARL's schedule, once the replay holds a batch);
- **on-policy** learners (:class:`RolloutTraining`): a rollout of ``rollout_steps`` steps of
  every copy, then one update on it.

Around either: when due, a greedy test, a log record and a checkpoint. A checkpoint holds the
whole run — learner (networks, targets, optimiser, normalisers, generator), the episodes in
progress (environment state, staging rows, policy memory), the replay (unless
``save_replay=false``), counters and config — so a resumed run takes the same steps as one
that never stopped. Checkpoints fall between iterations, so a rollout is never half-written.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from marl.checkpoint import (
    CheckpointError,
    check_identity,
    checkpoint_name,
    checkpoints,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from marl.config import ConfigError, TrainConfig, from_dict, to_dict, to_yaml, with_overrides
from marl.logger import RunLogger
from marl.replay import EpisodeReplay
from marl.rollout import RolloutBuffer
from marl.runner import EpisodeRunner, RolloutRunner, evaluate


def resolve_device(name: str) -> torch.device:
    """``name`` as a device, or a :class:`ConfigError` when this machine does not have it."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} is not allowed: CUDA is not available here "
                          "(use device=cpu)")
    return device


def build_env(cfg: TrainConfig, num_envs: int, device: torch.device) -> Any:
    """The run's environment; it is seeded by ``reset(seed=...)`` where the run starts."""
    from marl.envs import make

    try:
        return make(cfg.env, num_envs=num_envs, device=device, **cfg.env_args)
    except TypeError as e:  # an argument the environment does not take
        raise ConfigError(f"env_args: {e}") from None


def build_learner(cfg: TrainConfig, spec: Any, device: torch.device) -> Any:
    from marl.algos import get_algorithm

    return get_algorithm(cfg.algo).make_learner(spec, cfg.learner, device, cfg.seed)


def identity(cfg: TrainConfig, spec: Any) -> dict[str, Any]:
    """What must match between a checkpoint and the run that loads it."""
    return {"algo": cfg.algo, "env": cfg.env, "n_agents": spec.n_agents,
            "obs_shape": list(spec.obs_shape), "state_shape": list(spec.state_shape),
            "n_actions": spec.n_actions}


def test_summary(result: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean, std and 95% interval half-width of greedy test returns (and win rate)."""
    ret = result["return"].double()
    n = ret.numel()
    std = float(ret.std(unbiased=True)) if n > 1 else 0.0
    out = {"return_mean": float(ret.mean()), "return_std": std,
           "return_ci95": 1.96 * std / math.sqrt(n), "episode_length":
           float(result["length"].double().mean()), "episodes": float(n)}
    if "won" in result:
        out["win_rate"] = float(result["won"].double().mean())
    return out


@dataclass
class Counters:
    t_env: int = 0
    episodes: int = 0
    updates: int = 0
    owed: float = 0.0
    next_test: int = 0
    next_log: int = 0
    next_save: int = 0
    wall: float = 0.0  # seconds spent in earlier sessions of this run
    last_test: dict[str, float] = field(default_factory=dict)


class ReplayTraining:
    """Off-policy data: episodes into a replay, updates owed per finished episode."""

    def __init__(self, cfg: TrainConfig, env: Any, learner: Any, device: torch.device) -> None:
        lc = cfg.learner
        self.cfg, self.learner, self.device = cfg, learner, device
        replay_device = resolve_device(lc.replay_device) if lc.replay_device else device
        self.replay = EpisodeReplay(learner.replay_fields(), lc.buffer_size,
                                    env.spec.episode_limit, device=replay_device)
        self.sample_rng = torch.Generator(device=replay_device)
        self.sample_rng.manual_seed(cfg.seed + 2)
        self.runner = EpisodeRunner(env, learner, self.replay, device)

    def iterate(self, c: Counters) -> list[dict[str, torch.Tensor]]:
        """One env step of every copy, then the updates owed; returns their metrics."""
        lc = self.cfg.learner
        finished = self.runner.collect(1, c.t_env)
        c.t_env += self.runner.env.num_envs
        c.episodes += finished
        if len(self.replay) >= lc.batch_size:
            c.owed += finished * lc.updates_per_episode
        metrics = []
        while c.owed >= 1:
            batch = self.replay.sample(lc.batch_size, self.sample_rng, self.device)
            metrics.append(self.learner.update(batch))
            c.owed -= 1
            c.updates += 1
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"runner": self.runner.state_dict(),
                "replay": self.replay.state_dict() if self.cfg.save_replay else None,
                "sample_rng": self.sample_rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Restore; ``False`` when the episodes in progress could not be (see the runner)."""
        if state["replay"] is not None:
            self.replay.load_state_dict(state["replay"])
        self.sample_rng.set_state(state["sample_rng"])
        return self.runner.load_state_dict(state["runner"])


class RolloutTraining:
    """On-policy data: a rollout of every copy, then one update on it."""

    def __init__(self, cfg: TrainConfig, env: Any, learner: Any, device: torch.device) -> None:
        lc = cfg.learner
        if lc.num_minibatches > env.num_envs:
            raise ConfigError(f"num_minibatches={lc.num_minibatches} is not allowed: "
                              f"minibatches split the env copies, and num_envs={env.num_envs}",
                              "num_minibatches")
        self.learner = learner
        self.buffer = RolloutBuffer(learner.rollout_fields(), learner.rollout_steps(),
                                    env.num_envs, device=device)
        self.runner = RolloutRunner(env, learner, self.buffer, device)

    def iterate(self, c: Counters) -> list[dict[str, torch.Tensor]]:
        """One rollout of every copy and one update; returns its metrics."""
        c.episodes += self.runner.collect(c.t_env)
        c.t_env += self.buffer.steps * self.buffer.num_envs
        c.updates += 1
        return [self.learner.update(self.buffer)]

    def state_dict(self) -> dict[str, Any]:
        return {"runner": self.runner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        return self.runner.load_state_dict(state["runner"])


class Trainer:
    """Owns a run: environments, learner, its data (replay or rollouts), logger, checkpoints."""

    def __init__(self, cfg: TrainConfig, run_dir: Path | None = None) -> None:
        from marl.algos import get_algorithm

        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        self.env = build_env(cfg, cfg.num_envs, self.device)
        self.test_env = build_env(cfg, min(cfg.test_episodes, 1024), self.device)
        self.spec = self.env.spec
        self.learner = build_learner(cfg, self.spec, self.device)
        data = RolloutTraining if get_algorithm(cfg.algo).on_policy else ReplayTraining
        self.data = data(cfg, self.env, self.learner, self.device)
        self.runner = self.data.runner
        self.counters = Counters(next_test=0, next_log=cfg.log_interval,
                                 next_save=cfg.save_interval or cfg.steps)
        name = cfg.name or f"{cfg.algo}_{cfg.env.replace(':', '-')}_seed{cfg.seed}_" \
                           f"{time.strftime('%Y%m%d-%H%M%S')}"
        self.run_dir = run_dir or Path(cfg.runs_dir) / name
        self.started = False

    # --- checkpoints -----------------------------------------------------------------------
    def save(self) -> Path:
        c = self.counters
        payload = {
            "config": to_dict(self.cfg),
            "identity": identity(self.cfg, self.spec),
            "counters": c.__dict__,
            "learner": self.learner.state_dict(),
            **self.data.state_dict(),
        }
        folder = self.run_dir / "checkpoints"
        path = save_checkpoint(folder / checkpoint_name(c.t_env), payload,
                               identity=identity(self.cfg, self.spec))
        periodic = checkpoints(folder)
        for old in periodic[: max(0, len(periodic) - self.cfg.keep_checkpoints)]:
            old.unlink()
        return path

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from a loaded checkpoint payload (see :func:`load_run`)."""
        self.learner.load_state_dict(payload["learner"])
        saved = payload["counters"]
        self.counters = Counters(**saved)
        if not self.data.load_state_dict(payload):
            warnings.warn(f"{self.cfg.env} cannot save its state: the episodes in progress at "
                          "the checkpoint start again, so this resume is not step-for-step "
                          "exact", stacklevel=2)
            self.runner.start(self.cfg.seed + self.counters.t_env)
        self.started = True

    # --- the loop --------------------------------------------------------------------------
    def test(self, logger: RunLogger | None) -> dict[str, float]:
        c = self.counters
        result = evaluate(self.test_env, self.learner, self.cfg.test_episodes,
                          seed=self.cfg.seed * 1_000_003 + c.t_env)
        summary = test_summary(result)
        c.last_test = summary
        if logger is not None:
            logger.log("test", {k: v for k, v in summary.items() if k != "episodes"}, c.t_env)
        return summary

    def run(self) -> dict[str, Any]:
        """Train to ``cfg.steps`` env steps; returns the final figures (also printed as JSON)."""
        cfg, c = self.cfg, self.counters
        if not self.started:
            self.runner.start(cfg.seed)
            self.started = True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(to_yaml(cfg))
        logger = RunLogger(self.run_dir, total_steps=cfg.steps, progress=cfg.progress,
                           tensorboard=cfg.tensorboard, start_step=c.t_env)
        logger.text("config", to_yaml(cfg))
        b = self.env.num_envs
        metric_sums: dict[str, torch.Tensor] = {}
        metric_counts: dict[str, int] = {}  # a metric is averaged over the updates reporting it
        start = time.perf_counter()
        window = session = (start, c.t_env, c.updates)
        next_bar = c.t_env
        try:
            while c.t_env < cfg.steps:
                if c.t_env >= c.next_test:
                    self.test(logger)
                    c.next_test += cfg.test_interval or cfg.steps
                for metrics in self.data.iterate(c):
                    for k, v in metrics.items():
                        metric_sums[k] = metric_sums.get(k, 0) + v
                        metric_counts[k] = metric_counts.get(k, 0) + 1
                if c.t_env >= c.next_log:
                    now = time.perf_counter()
                    dt = max(now - window[0], 1e-9)
                    train = self.runner.take_stats()
                    if train:
                        logger.log("train", {k: v for k, v in train.items()
                                             if k != "episodes"}, c.t_env)
                    if metric_sums:
                        logger.log("learner", {k: v / metric_counts[k]
                                               for k, v in metric_sums.items()}, c.t_env)
                    metric_sums, metric_counts = {}, {}
                    logger.log("explore", self.learner.exploration(c.t_env), c.t_env)
                    logger.log("speed", {"env_steps_per_s": (c.t_env - window[1]) / dt,
                                         "updates_per_s": (c.updates - window[2]) / dt},
                               c.t_env)
                    window = (now, c.t_env, c.updates)
                    c.next_log += cfg.log_interval
                if c.t_env >= next_bar:  # the bar shows the latest greedy test return
                    rate = (c.t_env - session[1]) / max(time.perf_counter() - session[0], 1e-9)
                    logger.progress(c.t_env, steps_per_s=rate,
                                    recent_return=c.last_test.get("return_mean"))
                    next_bar = c.t_env + max(b, 2000)
                if cfg.save_interval and c.t_env >= c.next_save and c.t_env < cfg.steps:
                    c.wall += time.perf_counter() - start
                    start = time.perf_counter()
                    self.save()
                    c.next_save += cfg.save_interval
            final = self.test(logger)
            c.wall += time.perf_counter() - start
            start = time.perf_counter()
            self.save()
            logger.progress(c.t_env, steps_per_s=(c.t_env - session[1]) / max(
                time.perf_counter() - session[0], 1e-9), recent_return=final["return_mean"])
        finally:
            logger.close()
        summary = {
            "algo": cfg.algo, "env": cfg.env, "seed": cfg.seed, "num_envs": b,
            "env_steps": c.t_env, "episodes": c.episodes, "updates": c.updates,
            "wall_s": round(c.wall, 3), "steps_per_s": round(c.t_env / max(c.wall, 1e-9), 1),
            "test_return_mean": final["return_mean"], "test_return_ci95": final["return_ci95"],
            "run_dir": str(self.run_dir),
        }
        if "win_rate" in final:
            summary["test_win_rate"] = final["win_rate"]
        if hasattr(self.learner, "summary"):  # figures of the learner's own (MANSA: CL calls)
            summary.update(self.learner.summary())
        return summary


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or the newest checkpoint of a run folder."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: no checkpoints (step_*.pt) in this run folder")
        return found
    return path


def load_run(path: str | Path, *, flags: dict[str, Any] | None = None,
             overrides: tuple[str, ...] = ()) -> tuple[TrainConfig, dict[str, Any], Path]:
    """The config (saved one, with ``flags``/``overrides`` on top), payload and file of a
    checkpoint. The config's identity is checked against the saved one."""
    file = checkpoint_path(path)
    raw = load_checkpoint(file)
    saved = raw["config"]
    cfg = with_overrides(from_dict(saved), flags=flags, overrides=overrides)
    for key in ("algo", "env"):
        if getattr(cfg, key) != saved[key]:
            raise CheckpointError(f"{file}: the checkpoint is a {key}={saved[key]!r} run; "
                                  f"it cannot be resumed as {key}={getattr(cfg, key)!r}")
    return cfg, raw, file


def train(cfg: TrainConfig, *, resume: str | Path | None = None,
          flags: dict[str, Any] | None = None, overrides: tuple[str, ...] = ()) -> dict:
    """Run a training job (or continue the one saved at ``resume``); returns its summary."""
    if resume is None:
        trainer = Trainer(cfg)
        if latest_checkpoint(trainer.run_dir / "checkpoints") is not None:
            raise ConfigError(f"run folder {trainer.run_dir} already holds checkpoints: continue "
                              "it with --resume, or pick another --name")
    else:
        cfg, payload, file = load_run(resume, flags=flags, overrides=overrides)
        trainer = Trainer(cfg, run_dir=file.parent.parent)
        check_identity(file, payload["identity"], identity(cfg, trainer.spec))
        trainer.restore(payload)
    return trainer.run()


def print_summary(summary: dict[str, Any]) -> None:
    print(json.dumps(summary), flush=True)
