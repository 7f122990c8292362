"""The one training loop, with tests, logging and checkpoints, for every learner.

What an iteration collects and learns from depends on the learner:

- **replay** learners (:class:`ReplayTraining`): one batched environment step for every copy
  (finished episodes go to the replay), then the updates owed (``updates_per_episode`` per
  finished episode, EPyMARL's schedule, once the replay holds a batch);
- **on-policy** learners (:class:`RolloutTraining`): a rollout of ``rollout_steps`` steps of
  every copy, then one update on it.

Around either: when due, a test (greedy, or ε-greedy by ``evaluation_epsilon``), a log record
and a checkpoint. A checkpoint holds the whole run — learner (networks, targets, optimiser,
normalisers, generator), the episodes in progress (environment state, staging rows, policy
memory), the replay (unless ``save_replay=false``), counters and config — so a resumed run
takes the same steps as one that never stopped. Checkpoints fall between iterations, so a
rollout is never half-written; SIGINT, SIGTERM and SIGUSR1 (what a sweep's runs get when the
sweep dies) stop a run at the end of an iteration with one.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from marl.checkpoint import (
    CheckpointError,
    check_identity,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    record_written,
    remove_temp_files,
    save_checkpoint,
)
from marl.config import (
    ConfigError,
    TrainConfig,
    from_dict,
    to_dict,
    to_yaml,
    with_overrides,
)
from marl.curriculum import (
    CurriculumTraining,
    HeldOut,
    PairedTraining,
    curriculum_training,
    draw_tasks,
)
from marl.devices import available_device
from marl.envs.registry import env_version
from marl.learner import ReplayLearner, RolloutLearner
from marl.logger import RunLogger
from marl.replay import EpisodeReplay, ReplayTooLarge
from marl.rollout import RolloutBuffer
from marl.runner import EPISODE, EpisodeRunner, RolloutRunner, evaluate
from marl.spec import EnvSpec, VecEnv
from marl.sweep import PARENT_DIED

# What a resumed run may change; everything else defines the run and is refused.
RESUMABLE = ("steps", "device", "threads", "test_interval", "test_episodes", "log_interval",
             "save_interval", "keep_checkpoints", "save_replay", "progress", "tensorboard",
             "validate_actions")
PAYLOAD_KEYS = ("config", "identity", "counters", "learner")  # what every run checkpoint holds


class RunInterrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGUSR1 stopped a run after it saved a checkpoint
    (``checkpoint``)."""

    def __init__(self, signum: int, checkpoint: Path | None, run_dir: Path) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum, self.checkpoint, self.run_dir = signum, checkpoint, run_dir


class NoTestEpsilon(ConfigError):
    """A test ε asked of a learner that has none (a policy-gradient one tests greedily)."""


class TrainingDiverged(RuntimeError):
    """A loss or a parameter became NaN or infinite; the run stopped before saving it."""


def resolve_device(name: str, key: str = "device") -> torch.device:
    """``name`` as a device, or a :class:`ConfigError` when this machine does not have it."""
    try:
        return available_device(name, key)
    except ValueError as e:
        raise ConfigError(str(e), key) from None


def build_env(cfg: TrainConfig, num_envs: int, device: torch.device) -> Any:
    """The run's environment; it is seeded by ``reset(seed=...)`` where the run starts."""
    from marl.envs import UnknownEnvId, make

    try:
        env = make(cfg.env, num_envs=num_envs, device=device, **cfg.env_args)
    except UnknownEnvId:
        raise
    except (TypeError, ValueError) as e:  # an argument the environment does not take or allow
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.env_args.items()) or "none"
        raise ConfigError(f"env_args ({args}) for {cfg.env}: {e}") from None
    if cfg.compile_env:
        if not hasattr(env, "compile"):
            raise ConfigError(f"compile_env=true: {cfg.env} is not a batched tensor "
                              "environment (nothing to compile)", "compile_env")
        env.compile()
    return env


def build_learner(cfg: TrainConfig, spec: EnvSpec,
                  device: torch.device) -> ReplayLearner | RolloutLearner:
    from marl.algorithms import get_algorithm

    return get_algorithm(cfg.algo).make_learner(spec, cfg.learner, device, cfg.seed)


def identity(cfg: TrainConfig, spec: Any) -> dict[str, Any]:
    """What must match between a checkpoint and the run that loads it."""
    return {"algo": cfg.algo, "env": cfg.env, "n_agents": spec.n_agents,
            "obs_shape": list(spec.obs_shape), "state_shape": list(spec.state_shape),
            "n_actions": spec.n_actions}


def test_summary(result: dict[str, torch.Tensor], env: Any = None) -> dict[str, float]:
    """Mean, std and 95% interval half-width of test returns (and win rate, the mean
    of each episode figure, and what ``env.episode_figures`` derives from those)."""
    ret = result["return"].double()
    n = ret.numel()
    std = float(ret.std(unbiased=True)) if n > 1 else 0.0
    out = {"return_mean": float(ret.mean()), "return_std": std,
           "return_ci95": 1.96 * std / math.sqrt(n), "episode_length":
           float(result["length"].double().mean()), "episodes": float(n)}
    if "won" in result:
        out["win_rate"] = float(result["won"].double().mean())
    for key, value in result.items():
        if key.startswith(EPISODE):
            out[key[len(EPISODE):]] = float(value.double().mean())
    return {**out, **derived_figures(env, out)}


def derived_figures(env: Any, means: dict[str, float]) -> dict[str, float]:
    """What the environment derives from the means of its episode figures (Crafter: the
    score from the achievements' success rates); nothing for most environments."""
    derive = getattr(env, "episode_figures", None)
    return derive(means) if derive is not None and means else {}


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

    def __init__(self, cfg: TrainConfig, env: VecEnv, learner: ReplayLearner,
                 device: torch.device) -> None:
        rc = cfg.replay
        self.cfg, self.learner, self.device = cfg, learner, device
        replay_device = resolve_device(rc.device, "replay.device") if rc.device else device
        try:
            self.replay = EpisodeReplay(learner.replay_fields(), rc.buffer_size,
                                        env.spec.episode_limit, device=replay_device)
        except ReplayTooLarge as e:
            raise ConfigError(f"replay.buffer_size={rc.buffer_size}: {e}",
                              "replay.buffer_size") from None
        self.sample_rng = torch.Generator(device=replay_device)
        self.sample_rng.manual_seed(cfg.seed + 2)
        self.runner = EpisodeRunner(env, learner, self.replay, device)

    def iterate(self, c: Counters) -> list[dict[str, torch.Tensor]]:
        """One env step of every copy, then the updates owed; returns their metrics."""
        rc = self.cfg.replay
        finished = self.runner.collect(1, c.t_env)
        c.t_env += self.runner.env.num_envs
        c.episodes += finished
        if len(self.replay) >= rc.batch_size:
            c.owed += finished * rc.updates_per_episode
        metrics = []
        while c.owed >= 1:
            batch = self.replay.sample(rc.batch_size, self.sample_rng, self.device)
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

    def __init__(self, cfg: TrainConfig, env: VecEnv, learner: RolloutLearner,
                 device: torch.device) -> None:
        self.learner = learner
        self.buffer = RolloutBuffer(learner.rollout_fields(), learner.rollout_steps(env.num_envs),
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


def run_name(cfg: TrainConfig) -> str:
    """``cfg.name``, or a new name from the algorithm, environment, seed and time."""
    return cfg.name or (f"{cfg.algo}_{cfg.env.replace(':', '-')}_seed{cfg.seed}_"
                        f"{time.strftime('%Y%m%d-%H%M%S')}")


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse to start a run in a folder that already holds anything (another run's config,
    TensorBoard files or checkpoints would be overwritten or mixed with this one's)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} is a file; pick another --name")
    held = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if held:
        what = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
        hint = ("continue it with --resume" if (run_dir / "checkpoints").is_dir()
                else "it holds no checkpoint to resume")
        raise ConfigError(f"run folder {run_dir} already holds a run ({what}): {hint}, or "
                          "pick another --name")


def intra_op_threads(threads: int, device: torch.device) -> int:
    """Torch's intra-op threads for a run: ``threads``, or with 0 one thread on a CPU device
    (our tensors are small: a second thread gains little, and costs up to 30-fold when
    another process holds a core, as ``scripts/bench_threads.py`` measures); beside a GPU,
    the process's setting as it is."""
    if threads:
        return threads
    return 1 if device.type == "cpu" else torch.get_num_threads()


class Trainer:
    """Owns a run: environments, learner, its data (replay or rollouts), logger, checkpoints."""

    def __init__(self, cfg: TrainConfig, run_dir: Path | None = None) -> None:
        from marl.algorithms import get_algorithm

        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        torch.set_num_threads(intra_op_threads(cfg.threads, self.device))
        self.env = build_env(cfg, cfg.num_envs, self.device)
        self.test_env = build_env(cfg, min(cfg.test_episodes, 1024), self.device)
        self.spec = self.env.spec
        self.learner = build_learner(cfg, self.spec, self.device)
        self.data: ReplayTraining | RolloutTraining | CurriculumTraining | PairedTraining
        on_policy = get_algorithm(cfg.algo).on_policy
        self.heldout: HeldOut | None = None
        if cfg.teacher.name:
            if not (on_policy and isinstance(self.learner, RolloutLearner)):
                raise ConfigError(f"teacher.name={cfg.teacher.name!r}: curricula train "
                                  f"rollout learners (ippo, mappo), not {cfg.algo}",
                                  "teacher.name")
            try:
                self.data = curriculum_training(cfg, self.env, self.learner, self.device,
                                                build_env, build_learner)
                self.heldout = HeldOut(cfg, build_env, self.device)
            except ValueError as e:
                raise ConfigError(f"teacher.name={cfg.teacher.name!r}: {e}",
                                  "teacher.name") from None
        elif on_policy and isinstance(self.learner, RolloutLearner):
            self.data = RolloutTraining(cfg, self.env, self.learner, self.device)
        elif not on_policy and isinstance(self.learner, ReplayLearner):
            self.data = ReplayTraining(cfg, self.env, self.learner, self.device)
        else:
            contract = "RolloutLearner" if on_policy else "ReplayLearner"
            raise TypeError(f"the {cfg.algo} learner ({type(self.learner).__name__}) does not "
                            f"implement marl.learner.{contract}, which its registration "
                            f"(on_policy={on_policy}) promises")
        self.runner = self.data.runner
        self._validate(cfg.validate_actions != "never")
        self.counters = Counters(next_test=0, next_log=cfg.log_interval,
                                 next_save=cfg.save_interval or cfg.steps)
        self.run_dir = (run_dir or Path(cfg.runs_dir) / run_name(cfg)).absolute()
        self.started = False
        self.parent: str | None = None  # the checkpoint this run continues (lineage)
        self.saved_at: int | None = None  # env step of the last checkpoint this session wrote
        self.last_saved: Path | None = None
        self._signal: int | None = None

    def _validate(self, on: bool) -> None:
        """Action checks cost a host sync per step; a learner's masked choices are valid by
        construction, so by default (``validate_actions=first``) they are checked while the
        first episodes run and then switched off."""
        for env in (self.env, self.test_env):
            if hasattr(env, "validate"):
                env.validate = on

    # --- checkpoints -----------------------------------------------------------------------
    def save(self) -> Path:
        """Write a checkpoint of the whole run, record it, and drop the oldest written ones."""
        c = self.counters
        while self.cfg.save_interval and c.next_save <= c.t_env:  # advanced before it is saved
            c.next_save += self.cfg.save_interval
        payload = {
            "config": to_dict(self.cfg),
            "identity": identity(self.cfg, self.spec),
            "counters": c.__dict__,
            "learner": self.learner.state_dict(),
            **self.data.state_dict(),
        }
        folder = self.run_dir / "checkpoints"
        copy = 1
        while (folder / checkpoint_name(c.t_env, copy)).exists():  # an abandoned branch's
            copy += 1
        path = save_checkpoint(folder / checkpoint_name(c.t_env, copy), payload,
                               identity=identity(self.cfg, self.spec))
        record_written(path, self.parent)
        self.parent, self.saved_at, self.last_saved = path.name, c.t_env, path
        prune_checkpoints(folder, self.cfg.keep_checkpoints)
        return path

    def restore(self, payload: dict[str, Any], parent: str | None = None) -> None:
        """Continue from a loaded checkpoint payload (see :func:`load_run`); ``parent`` names
        the checkpoint for the lineage record."""
        self.learner.load_state_dict(payload["learner"])
        saved = payload["counters"]
        self.counters = Counters(**saved)
        if not self.data.load_state_dict(payload):
            warnings.warn(f"{self.cfg.env} cannot save its state: the episodes in progress at "
                          "the checkpoint start again, so this resume is not step-for-step "
                          "exact", stacklevel=2)
            self.runner.start(self.cfg.seed + self.counters.t_env)
        self.started, self.parent, self.saved_at = True, parent, self.counters.t_env

    def _check_finite(self, metric_sums: dict[str, torch.Tensor], since: int) -> None:
        """Raise :class:`TrainingDiverged` when a learner metric or any floating tensor of the
        learner's state (weights, optimiser, statistics) is NaN or infinite."""
        bad = [f"learner metric {k!r}" for k, v in metric_sums.items()
               if not bool(torch.isfinite(torch.as_tensor(v)).all())]
        bad += [f"learner state {k!r}" for k, v in _float_tensors(self.learner.state_dict())
                if not bool(torch.isfinite(v).all())]
        if bad:
            kept = (f"the newest checkpoint, {self.last_saved}, was written before it"
                    if self.last_saved else "this session wrote no checkpoint")
            shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
            raise TrainingDiverged(
                f"training diverged between env steps {since} and {self.counters.t_env}: "
                f"{shown} became NaN or infinite; {kept}. Lower the learning rate (lr=...) "
                "or clip gradients (grad_norm_clip=...) and start again")

    # --- stopping on SIGINT / SIGTERM / SIGUSR1 ----------------------------------------------
    def _catch_signals(self) -> dict[int, Any]:
        """Turn SIGINT/SIGTERM into a request to stop at the end of the iteration; the
        next signal of either kind acts as usual (a kill mid-save loses nothing: saves are
        atomic). SIGUSR1 (:data:`marl.sweep.PARENT_DIED`, what a sweep's runs get when the sweep
        dies) is the same request and never more: the kernel sends it again each time the
        run passes from an exiting thread of the dying sweep to another, so a repeat is no
        reason to stop at once."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def stop(signum: int, frame: Any) -> None:
            self._signal = signum
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, previous[sig])

        def stop_once(signum: int, frame: Any) -> None:
            if self._signal is None:
                self._signal = signum

        previous: dict[int, Any] = {sig: signal.getsignal(sig)
                                    for sig in (signal.SIGINT, signal.SIGTERM, PARENT_DIED)}
        for sig in previous:
            signal.signal(sig, stop_once if sig == PARENT_DIED else stop)
        return previous

    # --- the loop --------------------------------------------------------------------------
    def _test_if_due(self, logger: RunLogger) -> None:
        c = self.counters
        if c.t_env >= c.next_test:
            self.test(logger)
            c.next_test += self.cfg.test_interval or self.cfg.steps

    def test(self, logger: RunLogger | None) -> dict[str, float]:
        c = self.counters
        result = evaluate(self.test_env, self.learner, self.cfg.test_episodes,
                          seed=self.cfg.seed * 1_000_003 + c.t_env)
        summary = test_summary(result, self.test_env)
        if self.heldout is not None:
            heldout = self.heldout.test(self.learner, self.cfg.seed * 1_000_003 + c.t_env + 1,
                                        logger, c.t_env)
            summary["heldout_return_mean"] = heldout["return_mean"]
            summary["heldout_solved_rate"] = heldout["solved_rate"]
            if logger is not None:
                draw_tasks(self.env, self.cfg.teacher.render_tasks,
                           self.run_dir / "tasks" / f"step_{c.t_env}")
        c.last_test = summary
        if logger is not None:
            logger.log("test", {k: v for k, v in summary.items()
                                if k != "episodes" and not k.startswith("heldout_")}, c.t_env)
        return summary

    def run(self) -> dict[str, Any]:
        """Train to ``cfg.steps`` env steps; returns the final figures (also printed as JSON).

        SIGINT, SIGTERM or SIGUSR1 stops the run at the end of the current iteration with a
        checkpoint (:class:`RunInterrupted`); a NaN or infinite loss or weight stops it
        without one (:class:`TrainingDiverged`)."""
        cfg, c = self.cfg, self.counters
        if self.started and c.t_env >= cfg.steps:
            warnings.warn(f"the run is already at env step {c.t_env}, and steps={cfg.steps}: "
                          "nothing to train (raise --steps to continue it); nothing was "
                          "written", stacklevel=2)
            return self._summary(self.test(None))
        if not self.started:
            self.runner.start(cfg.seed)
            self.started = True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_temp_files(self.run_dir / "checkpoints")
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
        checked = c.t_env  # the env step up to which the learner was seen to be finite
        validated_until = c.t_env + self.spec.episode_limit * b  # validate_actions=first
        previous = self._catch_signals()
        try:
            while c.t_env < cfg.steps:
                self._test_if_due(logger)
                for metrics in self.data.iterate(c):
                    for k, v in metrics.items():
                        metric_sums[k] = metric_sums.get(k, 0) + v
                        metric_counts[k] = metric_counts.get(k, 0) + 1
                if cfg.validate_actions == "first" and c.t_env >= validated_until:
                    self._validate(False)
                if c.t_env >= c.next_log:
                    self._check_finite(metric_sums, checked)
                    checked = c.t_env
                    now = time.perf_counter()
                    dt = max(now - window[0], 1e-9)
                    train = self.runner.take_stats()
                    train.update(derived_figures(self.env, train))
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
                due = cfg.save_interval and c.t_env >= c.next_save and c.t_env < cfg.steps
                if due:  # a test due now goes into the checkpoint: a resume does not redo it
                    self._test_if_due(logger)
                if due or self._signal is not None:
                    self._check_finite(metric_sums, checked)
                    checked = c.t_env
                    c.wall += time.perf_counter() - start
                    start = time.perf_counter()
                    if self.saved_at != c.t_env:
                        self.save()
                if self._signal is not None:
                    raise RunInterrupted(self._signal, self.last_saved, self.run_dir)
            self._check_finite(metric_sums, checked)
            final = self.test(logger)
            c.wall += time.perf_counter() - start
            start = time.perf_counter()
            self.save()
            logger.progress(c.t_env, steps_per_s=(c.t_env - session[1]) / max(
                time.perf_counter() - session[0], 1e-9), recent_return=final["return_mean"])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            logger.close()
        return self._summary(final)

    def _summary(self, final: dict[str, float]) -> dict[str, Any]:
        c, cfg = self.counters, self.cfg
        summary = {
            "algo": cfg.algo, "env": cfg.env, "seed": cfg.seed, "num_envs": self.env.num_envs,
            "env_steps": c.t_env, "episodes": c.episodes, "updates": c.updates,
            "wall_s": round(c.wall, 3), "steps_per_s": round(c.t_env / max(c.wall, 1e-9), 1),
            "test_return_mean": final["return_mean"], "test_return_ci95": final["return_ci95"],
            "run_dir": str(self.run_dir),
        }
        if "win_rate" in final:
            summary["test_win_rate"] = final["win_rate"]
        for key in ("heldout_return_mean", "heldout_solved_rate"):
            if key in final:
                summary[key] = final[key]
        summary.update(self.learner.summary())  # figures of the learner's own (MANSA: CL calls)
        return summary


def _float_tensors(tree: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """The floating-point tensors in nested dicts/lists, with dotted paths."""
    if isinstance(tree, torch.Tensor):
        return [(prefix, tree)] if tree.is_floating_point() else []
    items: Iterable[tuple[Any, Any]]
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return []
    return [pair for k, v in items for pair in _float_tensors(v, f"{prefix}.{k}" if prefix
                                                               else str(k))]


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or the checkpoint a run folder wrote last."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: no checkpoints (step_*.pt) in this run folder")
        return found
    return path


def run_folder_of(file: Path) -> Path | None:
    """The run folder a checkpoint file belongs to (``<run>/checkpoints/<file>`` beside
    ``<run>/config.yaml``), or None for a loose file."""
    run = file.parent.parent
    if file.parent.name == "checkpoints" and (run / "config.yaml").is_file():
        return run
    return None


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, value in tree.items()
            for k, v in _leaves(value, f"{prefix}.{key}" if prefix else str(key)).items()}


def load_policy(checkpoint: str | Path, num_envs: int, *, device: str | None = None,
                ) -> tuple[TrainConfig, Any, Any]:
    """The config, ``num_envs`` copies of the environment and the learner with the weights of
    ``checkpoint`` (a file or a run folder), on the run's device or ``device``: what
    ``marl eval`` and ``marl render`` play."""
    cfg, payload, file = load_run(checkpoint, flags={"device": device} if device else None)
    where = resolve_device(cfg.device)  # the run's device may not exist on this machine
    env = build_env(cfg, num_envs, where)
    check_identity(file, payload["identity"], identity(cfg, env.spec))
    learner = build_learner(cfg, env.spec, where)
    learner.load_state_dict(payload["learner"])
    return cfg, env, learner


def evaluate_checkpoint(checkpoint: str | Path, episodes: int,
                        epsilons: Iterable[float | None] = (None,), *, seed: int = 0,
                        device: str | None = None,
                        ) -> tuple[TrainConfig, list[dict[str, float]]]:
    """Test the policy of ``checkpoint`` (a file or a run folder) on ``episodes`` episodes,
    once for each entry of ``epsilons``: ε-greedy with that ε (value-based learners; for
    others only 0, their greedy test policy, or :class:`NoTestEpsilon`), or, for None, as the
    run tests (its ``evaluation_epsilon``). Each result is :func:`test_summary`'s with the
    ``epsilon`` acted with; every test starts from ``seed``, so it plays the episodes
    ``marl eval`` would."""
    epsilons = list(epsilons)
    if episodes < 1:
        raise ConfigError(f"{episodes} test episodes are not allowed: expected >= 1")
    for e in epsilons:
        if e is not None and not 0 <= e <= 1:
            raise ConfigError(f"ε {e} is not allowed: expected a number in [0, 1]")
    cfg, env, learner = load_policy(checkpoint, min(episodes, 1024), device=device)
    own = getattr(learner, "test_epsilon", None)
    if own is None and any(e for e in epsilons):  # ε 0 is how such a learner tests: greedily
        raise NoTestEpsilon(f"a test ε applies to the value-based learners (iql, vdn, qmix) "
                            f"only; {cfg.algo} has no ε to test with")
    results = []
    for e in epsilons:
        if own is not None:
            learner.test_epsilon = own if e is None else e
        summary = test_summary(evaluate(env, learner, episodes, seed=seed), env)
        results.append({**summary, "epsilon": float(getattr(learner, "test_epsilon", 0.0))})
    return cfg, results


def load_run(path: str | Path, *, flags: dict[str, Any] | None = None,
             overrides: tuple[str, ...] = (), place: dict[str, str] | None = None,
             ) -> tuple[TrainConfig, dict[str, Any], Path]:
    """The config, payload and file of a checkpoint (``path``: a file or a run folder).

    The config is the saved one with ``place`` (``name``/``runs_dir``: where the run is now),
    then ``flags`` and ``overrides``, on top. Only :data:`RESUMABLE` keys (and the place keys
    named in ``place``) may change: any other key that differs from the saved run is refused,
    naming it, since the checkpoint cannot apply to it."""
    file = checkpoint_path(path)
    raw = load_checkpoint(file)
    missing = [k for k in PAYLOAD_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"checkpoint {file} has no {', '.join(map(repr, missing))}: it "
                              "was not written by marl train, so it cannot be resumed, "
                              "evaluated or rendered")
    try:
        saved = from_dict({**raw["config"], **(place or {})})
    except (ConfigError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {file} holds an unusable run config: {e}") from None
    version = env_version(saved.env)
    recorded = saved.env_version or f"{version.rpartition('-v')[0]}-v1"  # before versions: v1
    if recorded != version:
        raise CheckpointError(
            f"checkpoint {file} was trained on {saved.env} version {recorded}; this marl has "
            f"{version}, whose dynamics differ. Use the marl release that wrote it, or train "
            "again")
    saved.env_version = version
    cfg = with_overrides(saved, flags=flags, overrides=overrides)
    before, after = _leaves(to_dict(saved)), _leaves(to_dict(cfg))
    changed = [k for k in after if after[k] != before.get(k)
               and k not in RESUMABLE and k not in (place or {})]
    changed += [k for k in before if k not in after]  # an env_args key given or dropped
    if changed:
        key = changed[0]
        was = f"{key}={before[key]!r}" if key in before else f"no {key}"
        asked = repr(after[key]) if key in after else "to drop it"
        raise ConfigError(
            f"{key} cannot change when a run continues from {file}: the run has {was}, the "
            f"command line asks {asked}. A "
            f"checkpoint fixes everything but {', '.join(RESUMABLE)}; start a new run "
            "to change it", key)
    return cfg, raw, file


def train(cfg: TrainConfig, *, resume: str | Path | None = None,
          flags: dict[str, Any] | None = None, overrides: tuple[str, ...] = ()) -> dict:
    """Run a training job (or continue the one saved at ``resume``); returns its summary.

    ``resume`` is a run folder or a checkpoint file. A run folder's checkpoint continues in
    that folder; a loose checkpoint file (not in ``<run>/checkpoints/``) starts a new run
    folder (``name``, ``runs_dir`` from ``flags``/``overrides``), and nothing is written
    beside the file."""
    if resume is None:
        run_dir = Path(cfg.runs_dir) / run_name(cfg)
        check_new_run_dir(run_dir)
        cfg.name = run_dir.name
        version = env_version(cfg.env)
        if cfg.env_version not in ("", version):
            raise ConfigError(f"env_version={cfg.env_version!r} is not allowed: {cfg.env} is "
                              f"{version} in this marl (the trainer records it; leave it out)",
                              "env_version")
        cfg.env_version = version
        trainer = Trainer(cfg, run_dir=run_dir)
        return trainer.run()
    file = checkpoint_path(resume)
    home = run_folder_of(file)
    if home is not None:  # continue the run in its folder, wherever it is now
        place = {"name": home.name, "runs_dir": str(home.parent)}
    else:
        place = {"name": "", "runs_dir": TrainConfig.runs_dir}
    cfg, payload, file = load_run(file, flags=flags, overrides=overrides, place=place)
    if home is None:
        run_dir = Path(cfg.runs_dir) / run_name(cfg)
        check_new_run_dir(run_dir)
        cfg.name = run_dir.name
    elif Path(cfg.runs_dir).resolve() != home.parent.resolve() or cfg.name != home.name:
        raise ConfigError(f"--name and --runs-dir choose the folder of a new run; {file} "
                          f"continues its run in {home}. To branch into a new folder, "
                          "copy the checkpoint file out of the run and resume from the copy",
                          "name")
    else:
        run_dir = home
    trainer = Trainer(cfg, run_dir=run_dir)
    check_identity(file, payload["identity"], identity(cfg, trainer.spec))
    parent = file.name if file.parent == run_dir / "checkpoints" else str(file.absolute())
    trainer.restore(payload, parent=parent)
    del payload  # the restored run holds its own copies; the loaded file's can go
    return trainer.run()


def print_summary(summary: dict[str, Any]) -> None:
    print(json.dumps(summary), flush=True)
