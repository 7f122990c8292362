"""Local sweeps: run ``marl train`` jobs in subprocesses, or read the ones already finished.

Each job is one run folder ``<runs_dir>/<name>``; a finished one has ``summary.json`` and is
read back instead of run again, an interrupted one (checkpoints, no summary) is resumed, and
one killed before its first checkpoint starts again, so a sweep can be extended or continued.
Each job gets one torch thread; ``jobs`` run at a time.
Scripts such as ``learning_curves.py`` and ``report_mansa.py`` are built on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from marl.checkpoint import latest_checkpoint


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


def run_or_read(job: Job, runs_dir: str | Path) -> dict:
    """The run's summary: read when it finished before, else run (or resume) it first.

    The job runs inside ``runs_dir`` (paths made absolute), so that a source checkout in the
    caller's folder cannot shadow the installed package."""
    runs_dir = Path(runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    run_dir = runs_dir / job.name
    summary_file = run_dir / "summary.json"
    if summary_file.is_file():
        return json.loads(summary_file.read_text())
    if latest_checkpoint(run_dir / "checkpoints") is not None:  # an interrupted run: continue
        cmd = [sys.executable, "-m", "marl.cli", "train", "--resume", str(run_dir),
               "--steps", str(job.steps), "--no-progress"]
    else:  # a job killed before its first checkpoint left nothing to continue: start again
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [sys.executable, "-m", "marl.cli", "train", "--algo", job.algo, "--env", job.env,
               "--steps", str(job.steps), "--seed", str(job.seed), "--num-envs",
               str(job.num_envs), "--runs-dir", str(runs_dir), "--name", job.name,
               "--no-progress", "threads=1", *job.overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ}, cwd=runs_dir,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    summary_file.write_text(json.dumps(summary))
    return summary


def run_all(jobs: Sequence[Job], runs_dir: str | Path, parallel: int) -> list[dict]:
    """Summaries of ``jobs`` in order, ``parallel`` running at a time."""
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda j: run_or_read(j, runs_dir), jobs))


def scalar_curve(run_dir: str | Path, tag: str) -> list[tuple[int, float]]:
    """``(env step, value)`` of the TensorBoard scalar ``tag`` of a run (empty if absent)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in acc.Scalars(tag)]
