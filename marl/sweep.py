"""Sweeps: run ``marl train`` jobs in subprocesses, or read the ones already finished.

Each job is one run folder ``<runs_dir>/<name>``; a finished one has ``summary.json`` and is
read back instead of run again, an interrupted one (checkpoints, no summary) is resumed, and
one killed before its first checkpoint starts again, so a sweep can be extended or continued.
A job's process gets SIGUSR1 (``PARENT_DIED``) when the process (thread) that started it dies,
so a killed sweep leaves no orphan behind: the run saves a checkpoint and stops (``marl train``
does that on SIGUSR1, as on SIGTERM). A lock beside each run folder, held until the run's
process exits, keeps two sweeps from running one job at once.

:func:`run_local` runs jobs here, ``concurrent`` at a time, retrying failures;
:func:`marl.ray_sweep.run_on_ray` runs the same jobs as Ray Tune trials. Both give one
:class:`TrialResult` per job and report progress through :class:`Progress`. Scripts such as
``learning_curves.py`` and ``report_mansa.py`` use :func:`run_all`.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marl.checkpoint import latest_checkpoint

LOCK_WAIT_S = 120.0  # how long a job waits for a run folder that another process holds


@dataclass(frozen=True)
class Job:
    """One training run of a sweep."""

    name: str
    algo: str
    env: str
    seed: int
    steps: int
    num_envs: int
    overrides: tuple[str, ...] = field(default_factory=tuple)
    threads: int = 1  # torch threads of the run
    configs: tuple[str, ...] = field(default_factory=tuple)  # config files (absolute paths)


@dataclass
class TrialResult:
    """How a job of a sweep ended: ``done`` with its summary, or ``failed`` with the error of
    its last attempt."""

    job: Job
    status: str  # done | failed
    summary: dict[str, Any] | None = None
    error: str = ""
    attempts: int = 1


_PR_SET_PDEATHSIG = 1
# A job's process gets this signal when the sweep's thread that started it exits, and again
# for each other thread of a dying sweep it passes to: ``marl train`` stops on the first, with
# a checkpoint, and takes the repeats for the same request (SIGTERM's second would kill it).
PARENT_DIED = signal.SIGUSR1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:  # runs in the child between fork and exec: C calls only
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, PARENT_DIED)


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder's lock."""


def _lock(runs_dir: Path, name: str) -> int:
    """An open file descriptor holding the run folder's lock (waits ``LOCK_WAIT_S``)."""
    fd = os.open(runs_dir / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise RunFolderBusy(f"run folder {runs_dir / name} is in use by another "
                                    f"process (another sweep running this job?)") from None
            time.sleep(1.0)


class RunFolderMismatch(RuntimeError):
    """A run folder of the job's name holds a run of another job."""


def _what_runs(job: Job) -> dict[str, Any]:
    """What decides a job's results (its name and torch threads do not); config files by
    path and content, so that an edited file is another job."""
    what = {"algo": job.algo, "env": job.env, "seed": job.seed, "steps": job.steps,
            "num_envs": job.num_envs, "overrides": list(job.overrides)}
    if job.configs:
        what["configs"] = [f"{path} sha1:{hashlib.sha1(Path(path).read_bytes()).hexdigest()}"
                           for path in job.configs]
    return what


def _check_record(record: Path, run_dir: Path, job: Job) -> None:
    """Compare the job that made ``run_dir`` (recorded in ``record``) with ``job``, then
    record ``job``. A folder without a record (made before records were kept) is not
    checked; a record without its folder is stale."""
    wanted = _what_runs(job)
    if run_dir.exists() and record.is_file():
        made = json.loads(record.read_text())
        differ = [f"{k} {made.get(k)!r} there, {wanted.get(k)!r} here"
                  for k in sorted(wanted.keys() | made.keys()) if made.get(k) != wanted.get(k)]
        if differ:
            raise RunFolderMismatch(
                f"run folder {run_dir} holds another job's run ({'; '.join(differ)}): its "
                "results would be read back as this job's; give this sweep another "
                "--runs-dir, or remove that folder")
    record.write_text(json.dumps(wanted))


def run_or_read(job: Job, runs_dir: str | Path) -> dict:
    """The run's summary: read when it finished before, else run (or resume) it first.

    The job runs inside ``runs_dir`` (paths made absolute), so that a source checkout in the
    caller's folder cannot shadow the installed package. What the job runs (algorithm, env,
    seed, steps, copies, overrides, config files and their content) is recorded beside its
    folder (``.<name>.json``); a folder
    of the same name made by a different job raises :class:`RunFolderMismatch` rather than
    pass its results off as this job's. Raises ``RuntimeError`` (the command and the end of
    its error output) when the run fails."""
    runs_dir = Path(runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    run_dir = runs_dir / job.name
    summary_file = run_dir / "summary.json"
    fd = _lock(runs_dir, job.name)
    try:  # the run's process inherits the lock and holds it until it exits
        _check_record(runs_dir / f".{job.name}.json", run_dir, job)
        if summary_file.is_file():
            return json.loads(summary_file.read_text())
        if latest_checkpoint(run_dir / "checkpoints") is not None:  # interrupted: continue
            cmd = [sys.executable, "-m", "marl.cli", "train", "--resume", str(run_dir),
                   "--steps", str(job.steps), "--no-progress"]
        else:  # a job killed before its first checkpoint left nothing to continue: again
            shutil.rmtree(run_dir, ignore_errors=True)
            cmd = [sys.executable, "-m", "marl.cli", "train", "--algo", job.algo, "--env",
                   job.env, "--steps", str(job.steps), "--seed", str(job.seed), "--num-envs",
                   str(job.num_envs), "--runs-dir", str(runs_dir), "--name", job.name,
                   "--no-progress", *(a for path in job.configs for a in ("--config", path)),
                   f"threads={job.threads}", *job.overrides]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ},
                             cwd=runs_dir, check=False, pass_fds=(fd,),
                             preexec_fn=_die_with_parent)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed (exit {out.returncode}):\n"
                               f"{out.stderr[-2000:]}")
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        summary_file.write_text(json.dumps(summary))
        return summary
    finally:
        os.close(fd)


class Progress:
    """Counts of a sweep's trials (pending, running, done, failed) and the best so far by
    ``metric`` (a summary key; ``mode`` max or min), printed as one line at every change."""

    def __init__(self, total: int, metric: str, mode: str = "max",
                 emit: Callable[[str], None] = print) -> None:
        self.total, self.metric, self.mode, self.emit = total, metric, mode, emit
        self.running = self.done = self.failed = 0
        self.best: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # Ray Tune pickles its callbacks: no lock
        return {k: v for k, v in vars(self).items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._lock = threading.Lock()

    def started(self) -> None:
        with self._lock:
            self.running += 1
            self._show()

    def finished(self, name: str, summary: dict[str, Any] | None) -> None:
        with self._lock:
            self.running -= 1
            if summary is None:
                self.failed += 1
            else:
                self.done += 1
                value = summary.get(self.metric)
                if isinstance(value, (int, float)) and (self.best is None or (
                        value > self.best[0] if self.mode == "max" else value < self.best[0])):
                    self.best = (float(value), name)
            self._show()

    def retrying(self, name: str, attempt: int, error: str) -> None:
        """Say that attempt ``attempt`` of trial ``name`` failed, and why (the last lines of
        its error), before the next attempt resumes it: a failure that a retry gets past is
        still worth knowing (a full disk, a killed process)."""
        reason = " | ".join(line.strip() for line in error.strip().splitlines()[-3:])
        with self._lock:
            self.emit(f"trial {name}: attempt {attempt} failed, retrying: {reason}")

    def sync(self, *, running: int, done: int, failed: int,
             best: tuple[float, str] | None, total: int) -> None:
        """Set the counts from a scheduler that keeps them (Ray Tune)."""
        with self._lock:
            state = (self.running, self.done, self.failed, self.best, self.total)
            self.running, self.done, self.failed, self.best, self.total = (
                running, done, failed, best, total)
            if state != (running, done, failed, best, total):
                self._show()

    def line(self) -> str:
        pending = self.total - self.running - self.done - self.failed
        best = (f" · best {self.metric} {self.best[0]:.4g} ({self.best[1]})" if self.best
                else "")
        return (f"trials: {self.done} done, {self.running} running, {self.failed} failed, "
                f"{pending} pending of {self.total}{best}")

    def _show(self) -> None:
        self.emit(self.line())


def run_local(jobs: Sequence[Job], runs_dir: str | Path, *, concurrent: int = 1,
              retries: int = 0, progress: Progress | None = None) -> list[TrialResult]:
    """Every job run (or read) here, ``concurrent`` at a time; a failing job is tried
    ``retries`` more times (resuming from its checkpoints) and then reported as failed,
    while the others go on."""

    def trial(job: Job) -> TrialResult:
        if progress:
            progress.started()
        error = ""
        for attempt in range(1, retries + 2):
            try:
                summary = run_or_read(job, runs_dir)
            except RunFolderMismatch as e:  # another attempt would find the same folder
                error = str(e)
                break
            except RuntimeError as e:
                error = str(e)
                if progress and attempt <= retries:
                    progress.retrying(job.name, attempt, error)
                continue
            if progress:
                progress.finished(job.name, summary)
            return TrialResult(job, "done", summary, attempts=attempt)
        if progress:
            progress.finished(job.name, None)
        return TrialResult(job, "failed", error=error, attempts=attempt)

    with ThreadPoolExecutor(max(1, concurrent)) as pool:
        return list(pool.map(trial, jobs))


def run_all(jobs: Sequence[Job], runs_dir: str | Path, parallel: int) -> list[dict]:
    """Summaries of ``jobs`` in order, ``parallel`` running at a time (the first failure
    raises its ``RuntimeError``)."""
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda j: run_or_read(j, runs_dir), jobs))


def scalar_curve(run_dir: str | Path, tag: str) -> list[tuple[int, float]]:
    """``(env step, value)`` of the TensorBoard scalar ``tag`` of a run (empty if absent).

    A resumed run logs again the steps after its checkpoint; the reader keeps the newer
    values and drops the older ones, with a warning about a "TensorFlow restart" that is
    silenced here (nothing is wrong)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    reader_log = logging.getLogger("tensorboard")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    try:
        acc.Reload()
    finally:
        reader_log.setLevel(level)
    if tag not in acc.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in acc.Scalars(tag)]
