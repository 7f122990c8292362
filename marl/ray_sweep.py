"""Sweeps on Ray Tune: the same jobs as :func:`marl.sweep.run_local`, as Tune trials.

Each trial asks Ray for ``spec.cpus`` CPUs and ``spec.gpus`` GPUs and runs its job through
:func:`marl.sweep.run_or_read` (so the trainers are unchanged, and a rerun of the same sweep
reads finished trials back and resumes unfinished ones from their checkpoints, even after the
driver was killed: the runs' processes get SIGUSR1, save and stop). Tune retries a failing
trial ``spec.retries`` times, then reports it failed while the others go on. ``grid`` and
``random`` sweeps give Tune their list of jobs; an ``optuna`` sweep lets Optuna's TPE
(through Tune's ``OptunaSearch``, seeded) propose configurations, each trial running one
configuration on every seed and scored by the mean of ``spec.metric``.

Local by default (``ray.init()`` starts Ray on this machine, with ``num_cpus`` CPUs when
given), or an existing cluster at ``address``. Needs the ``ray`` extra (and ``optuna`` for
that searcher).
"""

from __future__ import annotations

import json
import socket
import statistics
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

try:
    import ray
    from ray import tune
except ImportError:  # pragma: no cover - the message is the point
    raise ImportError("marl sweep on Ray needs Ray: pip install 'marl-suite[ray]'") from None

from marl.config import ConfigError
from marl.sweep import Job, Progress, TrialResult, run_or_read
from marl.sweep_spec import SweepSpec


def _trial(config: dict[str, Any], runs_dir: str, metric: str, driver: str) -> None:
    """A Tune trial: its jobs one after another, reporting the mean of ``metric``."""
    jobs = [Job(**{**j, "overrides": tuple(j["overrides"]), "configs": tuple(j["configs"])})
            for j in config["jobs"]]
    check_node(Path(runs_dir), driver, jobs)
    values = []
    for job in jobs:
        value = run_or_read(job, runs_dir).get(metric)
        if isinstance(value, (int, float)):
            values.append(float(value))
    tune.report({"score": statistics.fmean(values) if values else float("nan"),
                 "runs": ",".join(j.name for j in jobs)})


def check_node(runs_dir: Path, driver: str, jobs: list[Job]) -> None:
    """Raise unless this node sees the driver's run folders and the jobs' config files.

    Ray may place a trial on any node of a cluster, and the driver reads the trials' results
    back from ``runs_dir``: a node with another folder of that path (its own disk) would train
    for nothing. The driver leaves the file ``driver`` in ``runs_dir``; a node that does not see
    it, or a job's config file, is not on the driver's storage."""
    node = socket.gethostname()
    if not (runs_dir / driver).is_file():
        raise RuntimeError(f"node {node} does not see this sweep's --runs-dir {runs_dir} (the "
                           "driver's marker is missing): on a cluster, --runs-dir must be on "
                           "storage every node mounts at the same path")
    for job in jobs:
        for path in job.configs:
            if not Path(path).is_file():
                raise RuntimeError(f"node {node} does not see the config file {path} of "
                                   f"{job.name}: on a cluster, config files must be on "
                                   "storage every node mounts at the same path")


def _space(space: dict[str, list[Any]]) -> Any:
    (kind, args), = space.items()
    if kind in ("grid", "choice"):
        return tune.choice(args)
    return {"uniform": tune.uniform, "loguniform": tune.loguniform,
            "randint": tune.randint}[kind](*args)


def run_on_ray(spec: SweepSpec, runs_dir: str | Path, *, address: str | None = None,
               num_cpus: int | None = None,
               progress: Progress | None = None) -> list[TrialResult]:
    """Run the sweep on Ray (see the module card); one result per job, in the order of
    ``spec.jobs()`` (an optuna sweep: in the order its trials ran)."""
    runs_dir = Path(runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    optuna = spec.searcher == "optuna"
    if optuna:
        if len(spec.algos) != 1 or len(spec.envs) != 1:
            raise ConfigError("sweep: an optuna search tunes one algorithm on one environment "
                              f"(got algos {spec.algos}, envs {spec.envs})")
        if not spec.search:
            raise ConfigError("sweep: an optuna search needs a search space (search:)")
        jobs: list[Job] = []
    else:
        jobs = spec.jobs()
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus if address is None else None,
                 include_dashboard=False, log_to_driver=False)
    marker = runs_dir / f".driver-{uuid.uuid4().hex}"  # see check_node
    driver = marker.name
    resources = {"cpu": spec.cpus, "gpu": spec.gpus}
    callback = ProgressCallback(progress, spec) if progress else None
    if optuna:
        try:
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            raise ImportError("an optuna search needs optuna: pip install optuna") from None
        searcher = OptunaSearch(metric="score", mode=spec.mode, seed=spec.search_seed)
        param_space: dict[str, Any] = {"search": {k: _space(s)
                                                  for k, s in spec.search.items()}}
        tune_config = tune.TuneConfig(search_alg=searcher, num_samples=spec.samples,
                                      max_concurrent_trials=spec.concurrent or None)
        trainable = tune.with_parameters(_optuna_trial, spec=spec, runs_dir=str(runs_dir),
                                         driver=driver)
    else:
        param_space = {"jobs": tune.grid_search([[asdict(j)] for j in jobs])}
        tune_config = tune.TuneConfig(max_concurrent_trials=spec.concurrent or None)
        trainable = tune.with_parameters(_trial, runs_dir=str(runs_dir), metric=spec.metric,
                                         driver=driver)
    run_config = tune.RunConfig(
        name=time.strftime("sweep-%Y%m%d-%H%M%S"), storage_path=str(runs_dir / ".tune"),
        failure_config=tune.FailureConfig(max_failures=spec.retries), verbose=0,
        callbacks=[callback] if callback else None)
    marker.touch()
    try:
        fitted = tune.Tuner(tune.with_resources(trainable, resources), param_space=param_space,
                            tune_config=tune_config, run_config=run_config).fit()
    finally:
        marker.unlink(missing_ok=True)
    grid = [(fitted[i].config or {}, fitted[i].error) for i in range(len(fitted))]
    attempts = callback.attempts if callback else {}
    if optuna:
        jobs = [job for config, _ in grid for job in spec.jobs(_overrides(config))]
        errors = {job.name: str(error) for config, error in grid if error
                  for job in spec.jobs(_overrides(config))}
    else:
        errors = {config["jobs"][0]["name"]: str(error) for config, error in grid if error}
    out = []
    for job in jobs:
        summary_file = runs_dir / job.name / "summary.json"
        tries = attempts.get(job.name, 1)
        if job.name in errors or not summary_file.is_file():
            out.append(TrialResult(job, "failed", error=errors.get(job.name, "no summary"),
                                   attempts=tries))
        else:
            out.append(TrialResult(job, "done", json.loads(summary_file.read_text()),
                                   attempts=tries))
    return out


def _overrides(config: dict[str, Any]) -> tuple[str, ...]:
    """The overrides of an optuna trial's configuration."""
    return tuple(f"{k}={v}" for k, v in config["search"].items())


def _optuna_trial(config: dict[str, Any], spec: SweepSpec, runs_dir: str, driver: str) -> None:
    _trial({"jobs": [asdict(j) for j in spec.jobs(_overrides(config))]}, runs_dir, spec.metric,
           driver)


class ProgressCallback(tune.Callback):
    """Keeps a :class:`~marl.sweep.Progress` in step with the trials' states, and counts
    each job's attempts."""

    def __init__(self, progress: Progress, spec: SweepSpec) -> None:
        self.progress, self.spec = progress, spec
        self.attempts: dict[str, int] = {}

    def _names(self, trial: Any) -> list[str]:
        if "jobs" in trial.config:
            return [j["name"] for j in trial.config["jobs"]]
        return [j.name for j in self.spec.jobs(_overrides(trial.config))]

    def _sync(self, trials: list[Any], ended: Any = None, how: str = "") -> None:
        """``ended``: a trial Tune reports ``how`` ended before its status says so."""
        def status(t: Any) -> str:
            return how if t is ended else t.status

        best = None
        for t in trials:
            score = (t.last_result or {}).get("score")
            if status(t) == "TERMINATED" and isinstance(score, float) and score == score:
                if best is None or (score > best[0] if self.spec.mode == "max"
                                    else score < best[0]):
                    best = (score, self._names(t)[0])
        self.progress.sync(running=sum(status(t) == "RUNNING" for t in trials),
                           done=sum(status(t) == "TERMINATED" for t in trials),
                           failed=sum(status(t) == "ERROR" for t in trials), best=best,
                           total=max(self.progress.total, len(trials)))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for name in self._names(trial):
            self.attempts[name] = self.attempts.get(name, 0) + 1
        self._sync(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._sync(trials, trial, "TERMINATED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._sync(trials, trial, "ERROR")
