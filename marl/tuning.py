"""A sweep's configurations ranked, and the winner of each algorithm × environment written as
a config file (what ``configs/tuned/`` ships).

A configuration is the search keys' values of a trial (the sweep's fixed overrides and seeds
apart). It is scored by the mean of the sweep's metric over its seeds; only a configuration
whose every seed finished competes, so a winner never rests on fewer seeds than its rivals.
The file holds the configuration's keys and ``num_envs`` (the replay and update schedules it
was tuned under depend on the number of copies), and, as comments, the score of every seed,
its runs and the command that chose it; ``marl train --config FILE`` trains with it.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from marl.config import overrides_yaml
from marl.sweep import TrialResult


@dataclass(frozen=True)
class ConfigurationScore:
    """One configuration of one algorithm on one environment, over the seeds that finished."""

    algo: str
    env: str
    configuration: tuple[str, ...]  # its search overrides, key=value
    num_envs: int
    values: tuple[float, ...]  # the metric of each finished seed, in seed order
    runs: tuple[str, ...]  # their run folders' names
    seeds_total: int  # the seeds the sweep runs it on

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    @property
    def complete(self) -> bool:
        return len(self.values) == self.seeds_total


def rank_configurations(results: Sequence[TrialResult], fixed: Sequence[str], metric: str,
                        mode: str) -> dict[tuple[str, str], list[ConfigurationScore]]:
    """Per ``(algo, env)``, its configurations, complete ones first, best mean first
    (``mode`` max or min); ``fixed`` are the sweep's overrides common to every trial."""
    groups: dict[tuple[str, str, tuple[str, ...]], list[TrialResult]] = {}
    for r in results:
        configuration = r.job.overrides[len(fixed):]
        if r.job.overrides[:len(fixed)] != tuple(fixed):
            raise ValueError(f"trial {r.job.name}: its overrides do not start with the sweep's "
                             f"fixed ones {list(fixed)}")
        groups.setdefault((r.job.algo, r.job.env, configuration), []).append(r)
    ranked: dict[tuple[str, str], list[ConfigurationScore]] = {}
    for (algo, env, configuration), trials in groups.items():
        trials = sorted(trials, key=lambda r: r.job.seed)
        done = [r for r in trials if r.status == "done" and r.summary is not None
                and isinstance(r.summary.get(metric), (int, float))]
        ranked.setdefault((algo, env), []).append(ConfigurationScore(
            algo, env, configuration, trials[0].job.num_envs,
            tuple(float(r.summary[metric]) for r in done if r.summary is not None),
            tuple(r.job.name for r in done), len(trials)))
    sign = -1.0 if mode == "max" else 1.0
    for scores in ranked.values():
        scores.sort(key=lambda c: (not c.complete, not c.values,
                                   sign * c.mean if c.values else 0.0))
    return ranked


def tuned_config(score: ConfigurationScore, metric: str, command: str) -> str:
    """The YAML file of a winning configuration, with where it came from as comments."""
    values = ", ".join(f"{v:.4g}" for v in score.values)
    header = [
        f"# Tuned {score.algo} on {score.env}: the best of a sweep by the mean {metric} over "
        f"{len(score.values)} seeds,",
        f"# {score.mean:.4g} ({values}); runs: {', '.join(score.runs)}.",
        f"# Chosen by: {command}",
        f"# Train with: marl train --algo {score.algo} --env {score.env} --config THIS_FILE",
    ]
    body = overrides_yaml(score.algo, score.env,
                          (*score.configuration, f"num_envs={score.num_envs}"))
    return "\n".join(header) + "\n" + body


def portable_command(argv: Sequence[str], cwd: str | Path | None = None) -> str:
    """``marl ARGV`` as a shipped file may record it: a path into the package's configs reads
    ``configs/...`` (where the repository keeps them), and a path under ``cwd`` (default: the
    working directory) relative to it, so no path of the machine that ran it is written."""
    base = (Path.cwd() if cwd is None else Path(cwd)).resolve()
    shipped = Path(str(resources.files("marl.configs"))).resolve()
    words = []
    for arg in argv:
        path = Path(arg)
        if path.is_absolute():
            resolved = path.resolve()
            if resolved.is_relative_to(shipped):
                arg = str(Path("configs") / resolved.relative_to(shipped))
            elif resolved.is_relative_to(base):
                arg = str(resolved.relative_to(base))
        words.append(shlex.quote(arg))
    return " ".join(["marl", *words])


def write_tuned(ranked: dict[tuple[str, str], list[ConfigurationScore]], out_dir: str | Path,
                metric: str, command: str) -> list[Path]:
    """``out_dir/<algo>_<env>.yaml`` of each algorithm × environment whose best configuration
    finished every seed (``:`` in the env id becomes ``-``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for (algo, env), scores in ranked.items():
        best = scores[0]
        if not best.complete:
            continue
        path = out / f"{algo}_{env.replace(':', '-')}.yaml"
        path.write_text(tuned_config(best, metric, command))
        written.append(path)
    return written
