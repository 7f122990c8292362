"""``marl report``: run folders to a Markdown report with learning curves, aggregate scores and
their 95% intervals, probabilities of improvement and performance profiles.

The statistics follow Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice",
and the aggregate ones are computed by their library, rliable (the ``report`` extra):

- **Curves**: per task (environment id) and algorithm, the mean over seeds of the metric at each
  env step the seeds share, with a 95% percentile-bootstrap band over seeds.
- **Scores**: a run's final score is its ``summary.json`` figure for the metric, else the last
  point of its curve. Per task, scores are min-max normalised over all runs of that task
  (:func:`min_max_normalise`), so that tasks weigh alike; ``normalise=False`` keeps raw scores.
- **Aggregates**: per algorithm, IQM and mean over runs and tasks with stratified-bootstrap 95%
  intervals; P(X > Y) for every pair of algorithms; performance profiles (the fraction of runs
  scoring above each threshold).

rliable needs, per algorithm, a ``[runs, tasks]`` matrix over the same tasks: the aggregates use
the tasks every algorithm ran, and an algorithm with more seeds on some tasks than on others
uses its lowest seeds, as many on each task as on its thinnest one (:func:`score_table`; the
report says what it left out). Algorithms may differ in their number of seeds.

Published figures (``--published FILE``, :func:`load_published`) are drawn beside the curves as
dashed lines and tabled beside the runs' final scores. ``--threshold T`` adds sample efficiency:
per task and algorithm, the env steps at which each seed's curve first reaches ``T``
(:func:`steps_to_reach`). ``--at STEP ...`` tables the curves' means at those env steps
(:func:`value_at`). Beside the raw final scores stands their mean's Student-t 95% interval
over seeds (:func:`mean_interval`), the "mean ± CI" of papers with a handful of seeds.
``--test-episodes N [--test-epsilon E ...]`` tests each run's final checkpoint again as
``marl eval`` does (:func:`with_checkpoint_tests`) and tables those means the same way.

    marl report runs/curves --out reports/curves
    marl report tuned=runs/tuned default=runs/default --out reports/tuned  # one algorithm, two
    marl report runs/smac --out reports/smac --published docs/envs/smac_qmix_published.yaml
    marl report runs/lbf --out reports/lbf --at 500000 1000000  # the means halfway, and so on
    marl report reports/smac/runs.json runs/smac-seed2 --out reports/smac  # add seeds later

A report keeps the runs it read in ``runs.json`` (each run's curve and figures), which a later
report reads like a run folder: runs made in another session, or on another machine, join
without their folders.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from marl.sweep import scalar_curve

WIN_RATE = "test/win_rate"
RETURN = "test/return_mean"
INSTALL_HINT = "marl report needs rliable and matplotlib: pip install marl-suite[report]"
DESCRIPTION = ("run folders to a Markdown report: learning curves, IQM and mean with 95% "
               "intervals, probabilities of improvement, performance profiles")


class SkippedRun(UserWarning):
    """A folder given to :func:`load_runs` that could not be read as a finished run."""


class UntestedRun(UserWarning):
    """A run whose final checkpoint :func:`with_checkpoint_tests` could not test."""


@dataclass(frozen=True)
class CheckpointTest:
    """A test of a run's final checkpoint: the mean of the report's metric over ``episodes``
    episodes from test seed ``seed``, ε-greedy with ``epsilon`` (0: greedy; None: a learner
    without ε, a policy-gradient one, tested as it tests, whatever ε was asked)."""

    episodes: int
    epsilon: float | None
    seed: int
    value: float


@dataclass(frozen=True)
class Run:
    """One finished training run, as read from its folder."""

    path: Path
    algo: str
    env: str
    seed: int
    metric: str  # the TensorBoard tag of ``curve``, e.g. "test/return_mean"
    curve: tuple[tuple[int, float], ...]  # (env step, value), by step
    final: float
    env_steps: int
    wall_s: float | None  # None without summary.json
    steps_per_s: float | None
    folder: str = ""  # the run folder's name (``path`` may be a report's runs.json)
    tests: tuple[CheckpointTest, ...] = ()  # of the final checkpoint, after training

    def __post_init__(self) -> None:
        if not self.folder:
            object.__setattr__(self, "folder", self.path.name)


@dataclass(frozen=True)
class Published:
    """A figure from elsewhere for one task, in the report's metric (e.g. a win rate in
    [0, 1]), with where it comes from and, when known, at how many env steps."""

    task: str
    source: str
    value: float
    steps: int | None = None


@dataclass(frozen=True)
class Band:
    """A statistic along an axis with its 95% interval, all arrays of one length."""

    x: np.ndarray
    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval."""

    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Aggregate:
    """An algorithm's IQM and mean over ``seeds`` runs on each of ``tasks`` tasks."""

    iqm: Estimate
    mean: Estimate
    seeds: int
    tasks: int


@dataclass(frozen=True)
class ScoreTable:
    """Final scores as rliable takes them: per algorithm a ``[seeds, tasks]`` matrix."""

    tasks: tuple[str, ...]
    scores: dict[str, np.ndarray]
    notes: tuple[str, ...]  # what was left out or tied, in words


@dataclass(frozen=True)
class Report:
    """Everything :func:`write_report` writes, computed by :func:`summarise`."""

    metric: str
    normalised: bool
    reps: int
    runs: tuple[Run, ...]
    curves: dict[str, dict[str, Band]]  # task -> algorithm -> mean over seeds by env step
    table: ScoreTable
    aggregates: dict[str, Aggregate]
    improvements: dict[tuple[str, str], Estimate]  # (X, Y) -> P(X > Y)
    profiles: dict[str, Band]  # algorithm -> fraction of runs above each threshold
    notes: tuple[str, ...]
    published: tuple[Published, ...] = ()
    threshold: float | None = None
    # task -> algorithm -> each seed's first env step at or above the threshold (None: never)
    reached: dict[str, dict[str, tuple[int | None, ...]]] = field(default_factory=dict)
    at: tuple[int, ...] = ()  # env steps asked for (``--at``), read off ``curves``
    # task -> algorithm -> (episodes, ε, test seed) -> each seed's (seed, value), by seed
    tests: dict[str, dict[str, dict[tuple[int, float | None, int],
                                    tuple[tuple[int, float], ...]]]] = field(default_factory=dict)


# --- reading run folders -------------------------------------------------------------------

class _Unreadable(Exception):
    """Why a run folder cannot be used."""


RUNS_FILE = "runs.json"  # a report's runs as it read them; `marl report` reads it back
RUNS_FORMAT = "marl-report-runs/1"


def find_run_dirs(path: str | os.PathLike) -> list[Path]:
    """``path`` when it is a run folder (holds ``config.yaml``), else the run folders below it."""
    path = Path(path)
    if (path / "config.yaml").is_file():
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        if "config.yaml" in files:
            found.append(Path(root))
            dirs.clear()  # a run folder's own sub-folders (checkpoints, tasks) hold no runs
    return sorted(found)


LABEL = re.compile(r"[A-Za-z0-9_.+-]+")


def _labelled(path: str | os.PathLike) -> tuple[str, Path]:
    """``LABEL=DIR`` → ``(LABEL, DIR)``; a plain path (or an existing one with ``=`` in its
    name) → ``("", path)``."""
    text = os.fspath(path)
    label, sep, rest = text.partition("=")
    if sep and rest and LABEL.fullmatch(label) and not Path(text).exists():
        return label, Path(rest)
    return "", Path(text)


def load_runs(paths: Sequence[str | os.PathLike], *, metric: str | None = None) -> list[Run]:
    """The finished runs in ``paths``: run folders, folders searched for them, or a report's
    ``runs.json`` (the file, or the report folder holding it), whose runs were read from
    their folders when that report was written.

    A path written ``LABEL=DIR`` names its runs' algorithm ``"<algo> (LABEL)"``, so that runs
    of one algorithm with different settings (tuned and default, say) are compared as two
    algorithms. ``metric`` is the TensorBoard tag to report; by default ``test/win_rate`` for
    runs whose env reports wins (SMAC) and ``test/return_mean`` otherwise. A folder that
    cannot be read, or a run that did not finish, is skipped with a :class:`SkippedRun`
    warning that says why; a ValueError when no run is left."""
    runs: list[Run] = []
    seen: dict[tuple[str, str, int], Path] = {}
    for label, path in map(_labelled, paths):
        if path.is_file() or ((path / RUNS_FILE).is_file() and not find_run_dirs(path)):
            file = path if path.is_file() else path / RUNS_FILE
            try:
                read = [(file, run) for run in _read_runs_file(file, metric)]
            except _Unreadable as e:
                _skip(file, str(e))
                continue
        elif not path.is_dir():
            _skip(path, "not a folder nor a report's runs.json")
            continue
        else:
            read = []
            run_dirs = find_run_dirs(path)
            if not run_dirs:
                _skip(path, "no run folder (one holding config.yaml) in it")
            for run_dir in run_dirs:
                try:
                    read.append((run_dir, _read_run(run_dir, metric)))
                except _Unreadable as e:
                    _skip(run_dir, str(e))
        for run_dir, run in read:
            if label:
                run = replace(run, algo=f"{run.algo} ({label})")
            key = (run.algo, run.env, run.seed)
            if key in seen:  # counting one seed twice would narrow every interval
                if seen[key].resolve() != run_dir.resolve():
                    _skip(run_dir, f"a second run of {run.algo} on {run.env} with seed "
                                   f"{run.seed} (the first is {seen[key]}); report such runs "
                                   "separately")
                continue
            seen[key] = run_dir
            runs.append(run)
    if not runs:
        raise ValueError(f"no finished run in {', '.join(map(str, paths))}: a run folder is "
                         "one that `marl train` made (it holds config.yaml and TensorBoard "
                         "files, and summary.json when a sweep ran it), or a report's "
                         f"{RUNS_FILE}")
    return runs


def runs_as_json(runs: Sequence[Run]) -> dict[str, Any]:
    """``runs`` as a report's ``runs.json`` holds them: every run's curve and figures, so a
    later report can read them back (:func:`load_runs`) when the run folders are gone or on
    another machine."""
    return {"format": RUNS_FORMAT, "runs": [
        {"algo": r.algo, "env": r.env, "seed": r.seed, "metric": r.metric,
         "curve": [list(point) for point in r.curve], "final": r.final,
         "env_steps": r.env_steps, "wall_s": r.wall_s, "steps_per_s": r.steps_per_s,
         "folder": r.folder, "tests": [vars(t) for t in r.tests]} for r in runs]}


def _read_runs_file(file: Path, metric: str | None) -> list[Run]:
    """The runs a report wrote to ``file`` (:func:`runs_as_json`); those of another metric
    than ``metric`` are skipped with a warning."""
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise _Unreadable(f"unreadable ({e})") from e
    if not isinstance(data, dict) or data.get("format") != RUNS_FORMAT:
        raise _Unreadable(f"not a report's {RUNS_FILE} (no \"format\": \"{RUNS_FORMAT}\")")
    entries = data.get("runs")
    if not isinstance(entries, list) or not entries:
        raise _Unreadable("no run in it")
    runs = []
    for i, entry in enumerate(entries):
        try:
            run = Run(file, str(entry["algo"]), str(entry["env"]), int(entry["seed"]),
                      str(entry["metric"]),
                      tuple((int(x), float(y)) for x, y in entry["curve"]),
                      float(entry["final"]), int(entry["env_steps"]),
                      None if entry["wall_s"] is None else float(entry["wall_s"]),
                      None if entry["steps_per_s"] is None else float(entry["steps_per_s"]),
                      str(entry["folder"]),
                      tuple(CheckpointTest(int(t["episodes"]),
                                           None if t["epsilon"] is None else float(t["epsilon"]),
                                           int(t["seed"]), float(t["value"]))
                            for t in entry.get("tests", ())))  # none before tests were kept
        except (KeyError, TypeError, ValueError) as e:
            raise _Unreadable(f"run {i + 1} unreadable ({type(e).__name__}: {e})") from e
        if metric is not None and run.metric != metric:
            _skip(file, f"run {i + 1} ({run.algo} on {run.env}, seed {run.seed}) holds "
                        f"{run.metric!r}, not {metric!r}")
            continue
        if not math.isfinite(run.final):
            raise _Unreadable(f"run {i + 1}: the final {run.metric!r} is {run.final}")
        runs.append(run)
    return runs


def load_published(path: str | os.PathLike) -> tuple[Published, ...]:
    """The figures of a YAML file that maps each task to a list of entries, each with a
    ``source`` (text), a ``value`` (a number in the report's metric) and optionally ``steps``
    (the env steps it was measured at)::

        smac:corridor:
          - {source: "PyMARL2 README, QMIX (batch 128)", value: 0.0, steps: 10050000}

    A ValueError names the file, the entry and what is wrong with it."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"published figures {path}: cannot be read ({e})") from e
    if not isinstance(data, dict) or not data:
        raise ValueError(f"published figures {path}: expected a mapping of tasks to lists of "
                         "{source, value, steps} entries")
    figures = []
    for task, entries in data.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"published figures {path}: {task}: expected a list of entries")
        for i, entry in enumerate(entries):
            where = f"published figures {path}: {task}, entry {i + 1}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected a mapping with source and value")
            unknown = set(entry) - {"source", "value", "steps"}
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)} (source, value, "
                                 "steps)")
            source, value, steps = entry.get("source"), entry.get("value"), entry.get("steps")
            if not isinstance(source, str) or not source.strip():
                raise ValueError(f"{where}: source must be a text saying where it comes from")
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise ValueError(f"{where}: value must be a number, got {value!r}")
            if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                                      or steps < 0):
                raise ValueError(f"{where}: steps must be a whole number >= 0, got {steps!r}")
            figures.append(Published(str(task), source, float(value), steps))
    return tuple(figures)


def _skip(path: Path, why: str) -> None:
    warnings.warn(f"{path}: {why}; skipped", SkippedRun, stacklevel=3)


def _read_run(run_dir: Path, metric: str | None) -> Run:
    from omegaconf import OmegaConf

    try:
        config: Any = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
        algo, env, seed = str(config["algo"]), str(config["env"]), int(config["seed"])
        teacher = (config.get("teacher") or {}).get("name") or ""
    except Exception as e:  # a broken file, or a YAML that is not a run's config
        raise _Unreadable(f"config.yaml unreadable ({type(e).__name__}: {e})") from e
    summary = None
    if (run_dir / "summary.json").is_file():
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
        except (OSError, ValueError) as e:
            raise _Unreadable(f"summary.json unreadable ({e})") from e
    if metric is None:
        wins = ("test_win_rate" in summary if summary is not None
                else bool(scalar_curve(run_dir, WIN_RATE)))
        metric = WIN_RATE if wins else RETURN
    curve = tuple(sorted(dict(scalar_curve(run_dir, metric)).items()))  # last value per step
    key = metric.replace("/", "_")  # summary.json names "test/win_rate" "test_win_rate"
    if teacher:  # a curriculum's runs compare by teacher: mappo+plr, mappo+paired, ...
        algo = f"{algo}+{teacher}"
    if summary is None:  # finished when its curve reached the run's steps (the final test)
        if not curve:
            raise _Unreadable(f"no {metric!r} scalars and no summary.json")
        if curve[-1][0] < int(config.get("steps", 0)):
            raise _Unreadable(f"unfinished: no summary.json, and the last {metric!r} point is "
                              f"at env step {curve[-1][0]:,} of {int(config['steps']):,}")
        final = curve[-1][1]
    elif key in summary:
        final = float(summary[key])
    elif curve:
        final = curve[-1][1]
    else:
        raise _Unreadable(f"no {metric!r} in summary.json nor in the TensorBoard files")
    if not math.isfinite(final):
        raise _Unreadable(f"the final {metric!r} is {final}")
    if summary is None:
        return Run(run_dir, algo, env, seed, metric, curve, final, curve[-1][0], None, None)
    try:
        return Run(run_dir, algo, env, seed, metric, curve, final, int(summary["env_steps"]),
                   float(summary["wall_s"]), float(summary["steps_per_s"]))
    except (KeyError, TypeError, ValueError) as e:
        raise _Unreadable(f"summary.json without a usable {e}") from e


TESTED = {RETURN: "return_mean", WIN_RATE: "win_rate"}  # metric -> its `marl eval` figure


def with_checkpoint_tests(runs: Sequence[Run], episodes: int,
                          epsilons: Sequence[float] = (0.0,), *, seed: int = 0) -> list[Run]:
    """``runs`` with tests of their final checkpoints added: ``episodes`` episodes for each ε
    of ``epsilons`` (value-based learners; a learner without ε is tested once, as it tests,
    and the test stands for every ε), each from test seed ``seed`` as ``marl eval --seed``
    plays them; the figure kept is the report's metric. A test a run already has is not made
    again; a run read from a ``runs.json`` keeps the tests recorded there, and one that lacks
    a test asked for (its checkpoint is not at hand), or whose checkpoint cannot be tested,
    is kept untested with an :class:`UntestedRun` warning."""
    from marl.checkpoint import CheckpointError
    from marl.config import ConfigError
    from marl.train import NoTestEpsilon, evaluate_checkpoint

    if episodes < 1:
        raise ValueError(f"{episodes} test episodes: expected >= 1")
    bad = [e for e in epsilons if not 0 <= e <= 1]
    if bad:
        raise ValueError(f"test ε {bad[0]}: expected a number in [0, 1]")
    untestable = sorted({r.metric for r in runs} - set(TESTED))
    if untestable:
        raise ValueError(f"a checkpoint test measures {' or '.join(TESTED)}, not "
                         f"{', '.join(untestable)}")
    out = []
    for run in runs:
        have = {(t.episodes, t.epsilon, t.seed) for t in run.tests}
        wanted = [] if (episodes, None, seed) in have else [
            float(e) for e in dict.fromkeys(epsilons) if (episodes, e, seed) not in have]
        what = f"{run.algo} on {run.env}, seed {run.seed}"
        if wanted and not run.path.is_dir():
            warnings.warn(f"{run.path}: {what} has no test of {episodes} episodes at ε "
                          f"{', '.join(f'{e:g}' for e in wanted)} (from seed {seed}), and "
                          "its checkpoint is not here to make one", UntestedRun, stacklevel=2)
            wanted = []
        tests: list[CheckpointTest] = []
        try:
            if wanted:
                try:
                    _, results = evaluate_checkpoint(run.path, episodes, wanted, seed=seed)
                    tested: list[float | None] = list(wanted)
                except NoTestEpsilon:  # no ε: one test, as the learner tests
                    _, results = evaluate_checkpoint(run.path, episodes, (None,), seed=seed)
                    tested = [None]
                tests = [CheckpointTest(episodes, e, seed, r[TESTED[run.metric]])
                         for e, r in zip(tested, results, strict=True)]
        except (CheckpointError, ConfigError) as e:
            warnings.warn(f"{run.path}: {what}: its final checkpoint cannot be tested ({e})",
                          UntestedRun, stacklevel=2)
        out.append(replace(run, tests=(*run.tests, *tests)) if tests else run)
    return out


# --- statistics ----------------------------------------------------------------------------

def curve_band(curves: Sequence[Sequence[tuple[int, float]]], *, reps: int = 2000,
               seed: int = 0) -> Band:
    """Mean over seeds of ``(env step, value)`` curves at the steps all of them share, and its
    95% percentile-bootstrap band (seeds resampled with replacement, ``reps`` times, from a
    generator seeded with ``seed``). Empty when the curves share no step."""
    shared = sorted(set.intersection(*(set(dict(c)) for c in curves))) if curves else []
    if not shared:
        empty = np.zeros(0)
        return Band(empty, empty, empty, empty)
    values = np.array([[dict(c)[s] for s in shared] for c in curves], dtype=float)
    n = len(curves)
    drawn = np.random.default_rng(seed).integers(0, n, size=(reps, n))
    counts = np.zeros((reps, n))  # how often each seed is in each resample
    np.add.at(counts, (np.arange(reps)[:, None], drawn), 1.0)
    lo, hi = np.percentile(counts @ values / n, [2.5, 97.5], axis=0)
    return Band(np.array(shared), values.mean(axis=0), lo, hi)


def mean_interval(values: Sequence[float]) -> Estimate | None:
    """The mean of ``values`` (one per seed) with its Student-t 95% interval: the "mean ± CI"
    that papers give over a handful of seeds, where a bootstrap has few distinct resamples to
    draw from (ten means for three seeds). None for fewer than two values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None
    try:
        from scipy import stats  # rliable's dependency
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    mean = float(x.mean())
    return Estimate(mean, mean - half, mean + half)


def value_at(band: Band, step: int) -> tuple[int, Estimate] | None:
    """The test at or before env step ``step`` on ``band`` (a mean over seeds and its band):
    its env step and value; None when the band begins later."""
    i = int(np.searchsorted(band.x, step, side="right")) - 1
    if i < 0:
        return None
    return int(band.x[i]), Estimate(float(band.value[i]), float(band.lo[i]), float(band.hi[i]))


def steps_to_reach(curve: Sequence[tuple[int, float]], threshold: float) -> int | None:
    """The first env step of ``curve`` whose value is at least ``threshold``; None if none."""
    return next((step for step, value in curve if value >= threshold), None)


def min_max_normalise(values: Sequence[float]) -> np.ndarray:
    """``(x - min) / (max - min)`` over ``values`` (all runs of one task), so the task's worst
    run scores 0 and its best 1. When every run scored the same, all get 0.5: a tie tells the
    algorithms apart on nothing, and 0.5 claims neither success nor failure."""
    x = np.asarray(values, dtype=float)
    span = x.max() - x.min()
    return np.full_like(x, 0.5) if span == 0 else (x - x.min()) / span


def score_table(runs: Sequence[Run], *, normalise: bool = True) -> ScoreTable:
    """Final scores per algorithm as ``[seeds, tasks]`` matrices over the tasks every algorithm
    ran, normalised per task (over all its runs) unless ``normalise`` is False.

    rliable needs as many runs on each task of one algorithm: an algorithm with more seeds on
    some tasks uses its lowest seeds, as many as on its thinnest task. Tasks that not every
    algorithm ran are left out. ``notes`` says what was left out."""
    if not runs:
        raise ValueError("no runs to score")
    notes: list[str] = []
    score: dict[int, float] = {}  # id(run) -> its (normalised) final score
    for task in sorted({r.env for r in runs}):
        of_task = [r for r in runs if r.env == task]
        finals = [r.final for r in of_task]
        if normalise:
            if len(set(finals)) == 1 and len(finals) > 1:
                notes.append(f"{task}: every run scored {finals[0]:g}; normalised to 0.5")
            finals = list(min_max_normalise(finals))
        score.update({id(r): f for r, f in zip(of_task, finals, strict=True)})
    algos = sorted({r.algo for r in runs})
    tasks_of = {a: {r.env for r in runs if r.algo == a} for a in algos}
    tasks = tuple(sorted(set.intersection(*tasks_of.values())))
    for task in sorted(set.union(*tasks_of.values()) - set(tasks)):
        missing = [a for a in algos if task not in tasks_of[a]]
        notes.append(f"{task}: not in the aggregates, as {', '.join(missing)} did not run it")
    scores: dict[str, np.ndarray] = {}
    if not tasks:
        notes.append("no task was run by every algorithm: no aggregate scores")
        return ScoreTable(tasks, scores, tuple(notes))
    for algo in algos:
        per_task = [sorted((r for r in runs if r.algo == algo and r.env == t),
                           key=lambda r: r.seed) for t in tasks]
        seeds = min(len(p) for p in per_task)
        if any(len(p) > seeds for p in per_task):
            counts = ", ".join(f"{t} {len(p)}" for t, p in zip(tasks, per_task, strict=True))
            notes.append(f"{algo}: {seeds} seeds per task in the aggregates (its lowest), as "
                         f"many as on its thinnest task; runs per task: {counts}")
        scores[algo] = np.array([[score[id(p[i])] for p in per_task] for i in range(seeds)])
    return ScoreTable(tasks, scores, tuple(notes))


def check_report_dependencies() -> None:
    """``ImportError`` with the install hint unless the report's packages (rliable and
    matplotlib) import: a sweep asks before its trials, not after hours of them."""
    _rliable()
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return library, metrics


@contextmanager
def _numpy_seeded(seed: int) -> Iterator[None]:
    """rliable's stratified bootstraps draw from NumPy's global generator (``np.random.choice``;
    their ``random_state`` is not used for it): seed it for a reproducible report, and give
    the caller's state back after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def aggregate_scores(scores: Mapping[str, np.ndarray], *, reps: int = 2000,
                     seed: int = 0) -> dict[str, Aggregate]:
    """IQM and mean of each algorithm's ``[seeds, tasks]`` scores with stratified-bootstrap 95%
    intervals (rliable, ``reps`` resamples, the bootstrap seeded with ``seed`` per algorithm,
    so one algorithm's figures do not depend on which others are reported)."""
    library, metrics = _rliable()

    def iqm_and_mean(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    out = {}
    for algo, x in scores.items():
        with _numpy_seeded(seed):
            point, interval = library.get_interval_estimates({algo: x}, iqm_and_mean, reps=reps)
        (iqm, mean), ((iqm_lo, mean_lo), (iqm_hi, mean_hi)) = point[algo], interval[algo]
        out[algo] = Aggregate(Estimate(float(iqm), float(iqm_lo), float(iqm_hi)),
                              Estimate(float(mean), float(mean_lo), float(mean_hi)),
                              seeds=x.shape[0], tasks=x.shape[1])
    return out


def improvement_probabilities(scores: Mapping[str, np.ndarray], *, reps: int = 2000,
                              seed: int = 0) -> dict[tuple[str, str], Estimate]:
    """P(X > Y) for every pair of algorithms (X before Y in ``scores``' sorted order; P(Y > X)
    is one minus it): the chance that a run of X beats a run of Y on a task, averaged over
    tasks, with a 95% interval from rliable's independent stratified bootstrap (seeds per
    algorithm may differ)."""
    library, metrics = _rliable()
    out = {}
    for x, y in combinations(sorted(scores), 2):
        with _numpy_seeded(seed):
            point, interval = library.get_interval_estimates(
                {"pair": (scores[x], scores[y])}, metrics.probability_of_improvement, reps=reps)
        lo, hi = np.ravel(interval["pair"])  # [2, 1] for a scalar statistic
        out[(x, y)] = Estimate(float(point["pair"]), float(lo), float(hi))
    return out


def performance_profiles(scores: Mapping[str, np.ndarray], taus: np.ndarray, *,
                         reps: int = 2000, seed: int = 0) -> dict[str, Band]:
    """Per algorithm, the fraction of its runs (all tasks) scoring above each threshold of
    ``taus``, with stratified-bootstrap 95% bands (rliable's score distributions)."""
    library, _ = _rliable()
    out = {}
    for algo, x in scores.items():
        with _numpy_seeded(seed):
            profile, band = library.create_performance_profile({algo: x}, taus, reps=reps)
        out[algo] = Band(np.asarray(taus), np.asarray(profile[algo], dtype=float),
                         np.asarray(band[algo][0], dtype=float),
                         np.asarray(band[algo][1], dtype=float))
    return out


def summarise(runs: Sequence[Run], *, normalise: bool = True, reps: int = 2000,
              seed: int = 0, published: Sequence[Published] = (),
              threshold: float | None = None, at: Sequence[int] = ()) -> Report:
    """The curves, score table, aggregates, probabilities of improvement and performance
    profiles of ``runs`` (and the ``published`` figures beside them, with a ``threshold``
    the steps each seed took to reach it, and the env steps ``at`` which to table the
    curves); every bootstrap is seeded with ``seed``, so a report is reproducible."""
    notes: list[str] = []
    ran = {r.env for r in runs}
    unrun = sorted({p.task for p in published} - ran)
    if unrun:
        notes.append(f"published figures left out, no run of their task: {', '.join(unrun)}")
    curves: dict[str, dict[str, Band]] = {}
    for task in sorted(ran):
        curves[task] = {}
        for algo in sorted({r.algo for r in runs if r.env == task}):
            of = [r for r in runs if r.env == task and r.algo == algo]
            with_curve = [r.curve for r in of if r.curve]
            if len(with_curve) < len(of):
                notes.append(f"{task}, {algo}: {len(of) - len(with_curve)} of {len(of)} runs "
                             "have no curve (no TensorBoard scalars)")
            band = curve_band(with_curve, reps=reps, seed=seed)
            longest = max((len(c) for c in with_curve), default=0)
            if len(band.x) < longest:
                notes.append(f"{task}, {algo}: the seeds share {len(band.x)} of up to "
                             f"{longest} test steps; the curve shows the shared ones")
            if len(band.x):
                curves[task][algo] = band
    table = score_table(runs, normalise=normalise)
    if not normalise and len(table.tasks) > 1:
        notes.append("raw scores of different tasks are aggregated as they are, so a task "
                     "weighs by the scale of its scores")
    aggregates, improvements, profiles = {}, {}, {}
    if table.scores:
        aggregates = aggregate_scores(table.scores, reps=reps, seed=seed)
        improvements = improvement_probabilities(table.scores, reps=reps, seed=seed)
        every = np.concatenate([x.ravel() for x in table.scores.values()])
        lo, hi = (0.0, 1.0) if normalise else (float(every.min()), float(every.max()))
        profiles = performance_profiles(table.scores, np.linspace(lo, hi, 101), reps=reps,
                                        seed=seed)
    metric = ", ".join(sorted({r.metric for r in runs}))
    reached = {} if threshold is None else {
        task: {algo: tuple(steps_to_reach(r.curve, threshold) for r in
                           sorted(runs, key=lambda r: r.seed) if r.env == task and r.algo == algo)
               for algo in sorted({r.algo for r in runs if r.env == task})}
        for task in sorted(ran)}
    tests: dict[str, dict[str, dict[tuple[int, float | None, int],
                                    list[tuple[int, float]]]]] = {}
    for r in sorted(runs, key=lambda r: (r.env, r.algo, r.seed)):
        for t in r.tests:
            key: tuple[int, float | None, int] = (t.episodes, t.epsilon, t.seed)
            tests.setdefault(r.env, {}).setdefault(r.algo, {}).setdefault(key, []).append(
                (r.seed, t.value))
    return Report(metric, normalise, reps, tuple(runs), curves, table, aggregates,
                  improvements, profiles, (*table.notes, *notes), tuple(published), threshold,
                  reached, tuple(sorted(set(at))),
                  {task: {algo: {key: tuple(v) for key, v in
                                sorted(by_key.items(), key=_test_order)}
                          for algo, by_key in by_algo.items()}
                   for task, by_algo in tests.items()})


def _test_order(item: tuple[tuple[int, float | None, int], Any]) -> tuple[int, float, int]:
    (episodes, epsilon, seed), _ = item
    return episodes, -1.0 if epsilon is None else epsilon, seed


# --- writing -------------------------------------------------------------------------------

def write_report(runs: Sequence[Run], out_dir: str | os.PathLike, *, normalise: bool = True,
                 reps: int = 2000, seed: int = 0, published: Sequence[Published] = (),
                 threshold: float | None = None, at: Sequence[int] = ()) -> Path:
    """Write ``report.md``, its PNG figures, ``report.json`` (the figures as numbers) and
    ``runs.json`` (the runs read, for later reports) into ``out_dir``; returns the path of
    ``report.md``."""
    report = summarise(runs, normalise=normalise, reps=reps, seed=seed, published=published,
                       threshold=threshold, at=at)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colours = _colours(sorted({r.algo for r in runs}))
    figures = {task: _plot_curves(out / f"curves_{_file_part(task)}.png", task, report, colours)
               for task, bands in report.curves.items() if bands}
    if report.aggregates:
        _plot_aggregates(out / "aggregate.png", report, colours)
        if report.improvements:  # one algorithm: nothing to compare, no figure
            _plot_improvements(out / "improvement.png", report.improvements)
        _plot_profiles(out / "profile.png", report, colours)
    (out / "report.md").write_text(_markdown(report, figures))
    (out / "report.json").write_text(json.dumps(_as_json(report)))
    (out / RUNS_FILE).write_text(json.dumps(runs_as_json(report.runs)))
    return out / "report.md"


def _file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def _colours(algos: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {a: palette(i % 10) for i, a in enumerate(algos)}


def _figure(width: float, height: float, cols: int = 1) -> tuple[Any, Any]:
    """A figure drawn by the Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, cols, squeeze=False)[0]


def _plot_curves(path: Path, task: str, report: Report, colours: Mapping[str, Any]) -> str:
    fig, (ax,) = _figure(6.4, 4.2)
    for algo, band in report.curves[task].items():
        seeds = sum(r.algo == algo and r.env == task and bool(r.curve) for r in report.runs)
        ax.plot(band.x, band.value, color=colours[algo], label=f"{algo} ({seeds} seeds)")
        ax.fill_between(band.x, band.lo, band.hi, color=colours[algo], alpha=0.2, linewidth=0)
    styles = ("--", ":", "-.")
    for i, p in enumerate(q for q in report.published if q.task == task):
        at = "" if p.steps is None else f" at {p.steps:,} steps"
        ax.axhline(p.value, color="black", alpha=0.6, linewidth=1, linestyle=styles[i % 3],
                   label=f"{p.source}: {_num(p.value)}{at}")
    metric = ", ".join(sorted({r.metric for r in report.runs if r.env == task}))
    ax.set(xlabel="env steps", ylabel=f"{metric} (mean, 95% bootstrap band)", title=task)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path.name


def _plot_aggregates(path: Path, report: Report, colours: Mapping[str, Any]) -> None:
    algos = list(report.aggregates)
    fig, axes = _figure(8.0, 1.2 + 0.45 * len(algos), cols=2)
    for ax, name in zip(axes, ("iqm", "mean"), strict=True):
        for y, algo in enumerate(algos):
            e = getattr(report.aggregates[algo], name)
            ax.barh(y, e.hi - e.lo, left=e.lo, height=0.6, color=colours[algo], alpha=0.6)
            ax.plot([e.value, e.value], [y - 0.3, y + 0.3], color="black")
        ax.set_yticks(range(len(algos)), algos)
        ax.invert_yaxis()  # the first algorithm on top, as in the table
        ax.set_title("IQM" if name == "iqm" else "Mean")
        ax.set_xlabel(_score_label(report))
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _plot_improvements(path: Path, improvements: Mapping[tuple[str, str], Estimate]) -> None:
    pairs = list(improvements)
    fig, (ax,) = _figure(6.4, 1.2 + 0.45 * max(len(pairs), 1))
    for y, pair in enumerate(pairs):
        e = improvements[pair]
        ax.barh(y, e.hi - e.lo, left=e.lo, height=0.6, color="tab:blue", alpha=0.6)
        ax.plot([e.value, e.value], [y - 0.3, y + 0.3], color="black")
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(pairs)), [f"P({x} > {y})" for x, y in pairs])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="probability of improvement (95% CI)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _plot_profiles(path: Path, report: Report, colours: Mapping[str, Any]) -> None:
    fig, (ax,) = _figure(6.4, 4.2)
    for algo, band in report.profiles.items():
        ax.plot(band.x, band.value, color=colours[algo], label=algo)
        ax.fill_between(band.x, band.lo, band.hi, color=colours[algo], alpha=0.2, linewidth=0)
    ax.set(xlabel=f"{_score_label(report)} τ", ylabel="fraction of runs with score > τ",
           ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _score_label(report: Report) -> str:
    return "normalised score" if report.normalised else report.metric


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def _one_decimal(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"  # None: the run has no summary.json


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _ci(e: Estimate) -> str:
    return f"{_num(e.value)} [{_num(e.lo)}, {_num(e.hi)}]"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _markdown(report: Report, figures: Mapping[str, str]) -> str:
    runs = report.runs
    algos, tasks = sorted({r.algo for r in runs}), sorted({r.env for r in runs})
    scores = "min-max normalised per task" if report.normalised else "raw"
    parts = [
        "# Training report",
        f"{_count(len(runs), 'run')} of {_count(len(algos), 'algorithm')} ({', '.join(algos)}) "
        f"on {_count(len(tasks), 'task')}; metric `{report.metric}`. Intervals are 95%, from "
        f"{report.reps:,} bootstrap resamples (the raw final scores' mean: Student's t over "
        "seeds); aggregates computed with rliable (Agarwal et al. 2021, \"Deep RL at the edge "
        "of the statistical precipice\").",
        "## Learning curves",
        "Mean over seeds at each env step the seeds share, with a 95% bootstrap band over "
        "seeds.",
    ]
    for task in tasks:
        if task in figures:
            parts.append(f"![{task}]({figures[task]})")
    rows = []
    for task in tasks:
        for algo in algos:
            of = [r for r in runs if r.env == task and r.algo == algo]
            if of:
                f = _seed_figures([(r.seed, r.final) for r in of])
                ci = f["ci95_t"]
                rows.append([task, algo, ", ".join(sorted({f"`{r.metric}`" for r in of})),
                             str(len(of)), _num(f["mean"]),
                             "–" if ci is None else f"± {_num(ci[1] - f['mean'])}",
                             _num(min(f["values"])), _num(max(f["values"])),
                             ", ".join(f"{_num(v)} ({s})" for s, v in zip(f["seeds"], f["values"],
                                                                           strict=True))])
    parts += ["Final scores (raw; the mean's 95% interval is Student's t over seeds):",
              _md_table(["task", "algorithm", "metric", "seeds", "mean", "95% CI (t)", "min",
                         "max", "each seed (seed)"], rows)]
    shown = [p for p in report.published if p.task in report.curves]
    if shown:
        parts.append("Published figures (dashed lines on the curves), beside the final scores "
                     "here:")
        parts.append(_md_table(
            ["task", "source", "at env steps", "value", "here (mean of seeds, env steps)",
             "best test here (mean of seeds, at env steps)"],
            [[p.task, p.source, "–" if p.steps is None else f"{p.steps:,}", _num(p.value),
              _ours(runs, p.task), _best_test(report, p.task)] for p in shown]))
    if report.at:
        parts.append("Mean over seeds during training, at the last test at or before each env "
                     "step asked for, with its 95% bootstrap band over seeds:")
        parts.append(_md_table(["task", "algorithm", *(f"at {s:,}" for s in report.at)],
                               [[task, algo, *(_at(band, s) for s in report.at)]
                                for task, bands in report.curves.items()
                                for algo, band in bands.items()]))
    if report.threshold is not None:
        parts.append(f"Env steps to reach {_num(report.threshold)} (each seed's first test at "
                     "or above it; seeds that never did are counted apart):")
        parts.append(_md_table(
            ["task", "algorithm", "seeds that reached it", "median steps", "each seed"],
            [[task, algo, f"{sum(x is not None for x in steps)} of {len(steps)}",
              _median_steps(steps), ", ".join("never" if x is None else f"{x:,}" for x in steps)]
             for task, by_algo in report.reached.items() for algo, steps in by_algo.items()]))
    if report.tests:
        parts.append("Final checkpoints tested after training (`marl eval`: each seed's mean "
                     "over the episodes, ε-greedy with the ε shown, 0 = greedy; a learner without "
                     "ε as it tests), the mean over seeds with its Student-t 95% interval:")
        rows = []
        for task, by_algo in report.tests.items():
            for algo, by_key in by_algo.items():
                for (episodes, epsilon, seed), values in by_key.items():
                    f = _seed_figures(values)
                    ci = f["ci95_t"]
                    rows.append([task, algo, f"{episodes:,} (seed {seed})",
                                 "– (none)" if epsilon is None else f"{epsilon:g}",
                                 str(len(values)), _num(f["mean"]),
                                 "–" if ci is None else f"± {_num(ci[1] - f['mean'])}",
                                 ", ".join(f"{_num(v)} ({s})" for s, v in values)])
        parts.append(_md_table(["task", "algorithm", "episodes", "ε", "seeds", "mean",
                                "95% CI (t)", "each seed (seed)"], rows))
    parts.append("## Aggregate scores")
    if report.aggregates:
        parts.append(f"Final scores, {scores}, over the tasks {', '.join(report.table.tasks)}: "
                     "IQM (the mean of the middle 50% of runs × tasks) and mean, with "
                     "stratified-bootstrap intervals (seeds resampled within each task).")
        parts.append(_md_table(
            ["algorithm", "IQM [95% CI]", "mean [95% CI]", "runs (seeds × tasks)"],
            [[a, _ci(g.iqm), _ci(g.mean), f"{g.seeds * g.tasks} ({g.seeds} × {g.tasks})"]
             for a, g in report.aggregates.items()]))
        parts.append("![aggregate scores](aggregate.png)")
        parts.append("## Probability of improvement")
        if report.improvements:
            parts.append("P(X > Y): the chance that a run of X scores above a run of Y on a "
                         "task, averaged over tasks (0.5: no difference); P(Y > X) = 1 − "
                         "P(X > Y).")
            parts.append(_md_table(["X", "Y", "P(X > Y) [95% CI]"],
                                   [[x, y, _ci(e)] for (x, y), e in
                                    report.improvements.items()]))
            parts.append("![probability of improvement](improvement.png)")
        else:
            parts.append("One algorithm: nothing to compare.")
        parts.append("## Performance profile")
        parts.append("The fraction of runs (all tasks) whose final score is above τ, with 95% "
                     "bootstrap bands; a curve above another everywhere dominates it.")
        parts.append("![performance profile](profile.png)")
    else:
        parts.append("None: no task was run by every algorithm.")
    parts.append("## Runs")
    parts.append(_md_table(
        ["algorithm", "env", "seed", "env steps", "wall-clock s", "env steps/s", "final score",
         "folder"],
        [[r.algo, r.env, str(r.seed), f"{r.env_steps:,}", _one_decimal(r.wall_s),
          _one_decimal(r.steps_per_s), _num(r.final), f"`{r.folder}`"]
         for r in sorted(runs, key=lambda r: (r.env, r.algo, r.seed))]))
    if report.notes:
        parts.append("## Notes")
        parts.append("\n".join(f"- {note}" for note in report.notes))
    return "\n\n".join(parts) + "\n"


def _at(band: Band, step: int) -> str:
    found = value_at(band, step)
    if found is None:
        return "–"
    test, e = found
    return _ci(e) + ("" if test == step else f" ({test:,})")


def _median_steps(steps: Sequence[int | None]) -> str:
    """The median over the seeds that reached the threshold, or – when none did."""
    done = [x for x in steps if x is not None]
    return f"{float(np.median(done)):,.0f}" if done else "–"


def _ours(runs: Sequence[Run], task: str) -> str:
    """Each algorithm's mean final score on ``task`` and the env steps its runs reached."""
    parts = []
    for algo in sorted({r.algo for r in runs if r.env == task}):
        of = [r for r in runs if r.env == task and r.algo == algo]
        steps = sorted({r.env_steps for r in of})
        reached = f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}–{steps[-1]:,}"
        parts.append(f"{algo} {_num(float(np.mean([r.final for r in of])))} ({reached})")
    return "; ".join(parts)


def _best_test(report: Report, task: str) -> str:
    """Each algorithm's highest mean over seeds at one test point on ``task``, and where: the
    statistic of papers that table "maximum returns" (EPyMARL's), beside which a final score
    would read low."""
    parts = []
    for algo, band in sorted(report.curves.get(task, {}).items()):
        if len(band.value):
            best = int(np.argmax(band.value))
            parts.append(f"{algo} {_num(float(band.value[best]))} ({int(band.x[best]):,})")
    return "; ".join(parts) or "–"


def _as_json(report: Report) -> dict[str, Any]:
    def estimate(e: Estimate) -> dict[str, Any]:
        return {"value": e.value, "ci95": [e.lo, e.hi]}

    return {
        "metric": report.metric, "normalised": report.normalised, "reps": report.reps,
        "tasks": list(report.table.tasks),
        "algorithms": {a: {"iqm": estimate(g.iqm), "mean": estimate(g.mean), "seeds": g.seeds,
                           "tasks": g.tasks} for a, g in report.aggregates.items()},
        "improvement": [{"x": x, "y": y, **estimate(e)}
                        for (x, y), e in report.improvements.items()],
        "curves": {task: {a: {"steps": b.x.tolist(), "mean": b.value.tolist(),
                              "lo": b.lo.tolist(), "hi": b.hi.tolist()}
                          for a, b in bands.items()} for task, bands in report.curves.items()},
        "published": [vars(p) for p in report.published],
        "threshold": report.threshold,
        "reached": {task: {a: list(v) for a, v in by.items()}
                    for task, by in report.reached.items()},
        "finals": {task: {a: _seed_figures([(r.seed, r.final) for r in report.runs
                                            if r.env == task and r.algo == a])
                          for a in sorted({r.algo for r in report.runs if r.env == task})}
                   for task in sorted({r.env for r in report.runs})},
        "tests": {task: {a: [{"episodes": episodes, "epsilon": epsilon, "test_seed": seed,
                              **_seed_figures(values)}
                             for (episodes, epsilon, seed), values in by_key.items()]
                         for a, by_key in by_algo.items()}
                  for task, by_algo in report.tests.items()},
        "at": {task: {a: [_at_json(b, s) for s in report.at] for a, b in bands.items()}
               for task, bands in report.curves.items()} if report.at else {},
        "notes": list(report.notes),
    }


def _seed_figures(by_seed: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """One figure per seed of one algorithm on one task (a final score, a checkpoint test),
    by seed, with their mean's t interval."""
    seeds, values = zip(*sorted(by_seed), strict=True)
    interval = mean_interval(values)
    return {"seeds": list(seeds), "values": list(values), "mean": float(np.mean(values)),
            "ci95_t": None if interval is None else [interval.lo, interval.hi]}


def _at_json(band: Band, step: int) -> dict[str, Any]:
    found = value_at(band, step)
    if found is None:
        return {"asked": step, "step": None}
    test, e = found
    return {"asked": step, "step": test, "value": e.value, "ci95": [e.lo, e.hi]}


# --- command line --------------------------------------------------------------------------

def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _steps(text: str) -> int:
    """Env steps as ``500000``, ``500_000`` or ``5e5``."""
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number of env steps, got {text!r}")
    value = int(number)
    if value < 0:
        raise argparse.ArgumentTypeError(f"env steps cannot be negative, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``marl report``: for :func:`main`, and for a ``marl.cli`` sub-command
    that runs :func:`run_cli`."""
    parser.add_argument("runs", nargs="+", metavar="RUNS_DIR",
                        help="run folders, or folders searched for them, or an earlier "
                             "report's runs.json (or its folder); LABEL=DIR reports DIR's runs "
                             "as '<algo> (LABEL)', e.g. tuned=runs/a default=runs/b")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for report.md, its figures, report.json and runs.json")
    parser.add_argument("--metric", default=None, metavar="TAG",
                        help="TensorBoard tag to report (default: test/win_rate where the env "
                             "reports wins, else test/return_mean), e.g. heldout/solved_rate")
    parser.add_argument("--no-normalise", action="store_true",
                        help="aggregate raw scores instead of min-max normalising each task")
    parser.add_argument("--reps", type=_positive, default=2000, metavar="N",
                        help="bootstrap resamples per interval (default 2000)")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="also table the env steps each seed took to first reach T (e.g. "
                             "0.9 for a win rate)")
    parser.add_argument("--at", type=_steps, nargs="+", default=(), metavar="STEP",
                        help="also table each curve's mean over seeds at these env steps (the "
                             "last test at or before each), e.g. --at 500000 1000000")
    parser.add_argument("--test-episodes", type=_positive, default=None, metavar="N",
                        help="also test each run's final checkpoint on N episodes (as marl "
                             "eval) and table the means over seeds; kept in runs.json")
    parser.add_argument("--test-epsilon", type=float, nargs="+", default=None, metavar="E",
                        help="with --test-episodes: test ε-greedily with each ε (value-based "
                             "learners; default 0, greedy), e.g. 0 0.05")
    parser.add_argument("--published", default=None, metavar="FILE",
                        help="YAML of published figures per task ({source, value, steps} "
                             "entries), drawn beside the curves and tabled beside the scores")


def run_cli(args: argparse.Namespace) -> int:
    """``marl report``: write the report, print its path and one JSON line of aggregates."""
    try:
        published = load_published(args.published) if args.published else ()
        if args.test_epsilon is not None and args.test_episodes is None:
            raise ValueError("--test-epsilon needs --test-episodes N")
        runs = load_runs(args.runs, metric=args.metric)
        if args.test_episodes is not None:
            runs = with_checkpoint_tests(runs, args.test_episodes, args.test_epsilon or (0.0,))
        path = write_report(runs, args.out, normalise=not args.no_normalise, reps=args.reps,
                            published=published, threshold=args.threshold, at=args.at)
    except (ValueError, ImportError) as e:
        print(f"marl report: error: {e}", file=sys.stderr)
        return 2
    figures = json.loads((path.parent / "report.json").read_text())
    print(path)
    print(json.dumps({"report": str(path), "metric": figures["metric"],
                      "normalised": figures["normalised"], "tasks": figures["tasks"],
                      "algorithms": figures["algorithms"]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="marl report", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    formatwarning = warnings.formatwarning  # warnings read as the command's own lines
    warnings.formatwarning = lambda message, *_, **__: f"marl report: warning: {message}\n"
    try:
        return run_cli(args)
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
