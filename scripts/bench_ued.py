"""Curriculum benchmark: zero-shot held-out return and solved rate of each teacher, over seeds.

Runs ``marl train --teacher T`` for every (teacher, seed) — ``--jobs`` at a time, each in its
own process with one torch thread, through :mod:`marl.sweep` (finished runs are read back,
interrupted ones resumed) — then reads each run's held-out tests (``heldout/return_mean``,
``heldout/solved_rate`` and the per-task figures, logged at every test) from its TensorBoard
files. Prints, per teacher, the last test's held-out return and solved rate: the mean over
seeds with a 95% Student-t interval (``t(0.975, n-1) · sd / sqrt(n)``; with few seeds the
interval is wide, as it should be), each task's solved rate, the student's env steps and the
antagonist's (PAIRED and CLUTR, counted apart); then one JSON line with every curve.
``--plot FILE`` draws the curves (mean and 95% band over seeds).

    python scripts/bench_ued.py --teachers dr plr accel paired --env lbf:13x13-2p-3f \\
        --seeds 1 2 3 --steps 5000000 --num-envs 64 --test-interval 250000 --jobs 2 \\
        --runs-dir runs/ued --plot ued.png use_rnn=false hidden_dim=64
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from marl.report import mean_interval
from marl.sweep import Job, run_all, scalar_curve

ANTAGONIST_STEPS = "learner/teacher_antagonist_env_steps"


def run_name(teacher: str, env: str, seed: int) -> str:
    return f"{teacher}_{env.replace(':', '-')}_seed{seed}"


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """The mean and the half-width of its 95% Student-t interval (0 for one value)."""
    interval = mean_interval(values)
    if interval is None:
        return statistics.fmean(values), 0.0
    return interval.value, interval.hi - interval.value


def band(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float, float]]:
    """``(step, mean, ci95)`` at the test points every run reached."""
    common = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    table = [dict(c) for c in curves]
    return [(s, *mean_ci95([t[s] for t in table])) for s in common]


def plot(curves: dict[str, dict[str, list]], out: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in ((axes[0], "return", "held-out return"),
                              (axes[1], "solved", "held-out solved rate")):
        for teacher, entry in curves.items():
            rows = entry[metric]
            steps = [s for s, _, _ in rows]
            mean = [m for _, m, _ in rows]
            ax.plot(steps, mean, label=teacher)
            ax.fill_between(steps, [m - c for _, m, c in rows], [m + c for _, m, c in rows],
                            alpha=0.2)
        ax.set_xlabel("student env steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", nargs="+", default=["dr", "plr", "accel", "paired"])
    parser.add_argument("--algo", default="mappo")
    parser.add_argument("--env", default="lbf:13x13-2p-3f")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=5_000_000)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--test-interval", type=int, default=250_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs-dir", default="runs/ued")
    parser.add_argument("--plot", default="", help="write the curves to this PNG file")
    parser.add_argument("--finished-only", action="store_true",
                        help="report the runs that finished; run nothing")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    jobs = [Job(run_name(t, args.env, s), args.algo, args.env, s, args.steps, args.num_envs,
                (f"teacher.name={t}", f"test_interval={args.test_interval}", *args.overrides))
            for t in args.teachers for s in args.seeds]
    if args.finished_only:
        jobs = [j for j in jobs if (Path(args.runs_dir) / j.name / "summary.json").is_file()]
    summaries = run_all(jobs, args.runs_dir, args.jobs)
    by_teacher: dict[str, list[tuple[Path, dict]]] = {}
    for job, summary in zip(jobs, summaries, strict=True):
        teacher = job.name.split("_", 1)[0]
        by_teacher.setdefault(teacher, []).append((Path(args.runs_dir) / job.name, summary))
    results: dict[str, dict] = {}
    for teacher, runs in by_teacher.items():
        returns = [scalar_curve(d, "heldout/return_mean") for d, _ in runs]
        solved = [scalar_curve(d, "heldout/solved_rate") for d, _ in runs]
        tasks = sorted({tag.removeprefix("heldout/").removesuffix("_solved")
                        for tag in _tags(runs[0][0]) if tag.endswith("_solved")})
        per_task = {task: mean_ci95([scalar_curve(d, f"heldout/{task}_solved")[-1][1]
                                     for d, _ in runs]) for task in tasks}
        antagonist = [scalar_curve(d, ANTAGONIST_STEPS) for d, _ in runs]
        results[teacher] = {
            "seeds": [job_summary["seed"] for _, job_summary in runs],
            "student_env_steps": [s["env_steps"] for _, s in runs],
            "antagonist_env_steps": [int(c[-1][1]) if c else 0 for c in antagonist],
            "wall_s": [s["wall_s"] for _, s in runs],
            "final_return": mean_ci95([c[-1][1] for c in returns]),
            "final_solved": mean_ci95([c[-1][1] for c in solved]),
            "final_return_per_seed": [c[-1][1] for c in returns],
            "final_solved_per_seed": [c[-1][1] for c in solved],
            "task_solved": per_task,
            "return": band(returns), "solved": band(solved),
        }
    print(f"{args.algo} on {args.env}: held-out test after {args.steps:,} student env steps "
          "(mean over seeds ± 95% t-interval)")
    print(f"{'teacher':<8} {'seeds':>5} {'return':>15} {'solved rate':>15} "
          f"{'antagonist steps':>17} {'wall s/run':>10}")
    for teacher, r in results.items():
        (rm, rc), (sm, sc) = r["final_return"], r["final_solved"]
        print(f"{teacher:<8} {len(r['seeds']):>5} {rm:>7.3f} ± {rc:<5.3f} {sm:>7.3f} ± {sc:<5.3f} "
              f"{statistics.fmean(r['antagonist_env_steps']):>17,.0f} "
              f"{statistics.fmean(r['wall_s']):>10.0f}")
    tasks = sorted({t for r in results.values() for t in r["task_solved"]})
    print("\nsolved rate per held-out task (mean over seeds)")
    print(f"{'teacher':<8} " + " ".join(f"{t[:11]:>11}" for t in tasks))
    for teacher, r in results.items():
        print(f"{teacher:<8} " + " ".join(f"{r['task_solved'].get(t, (math.nan,))[0]:>11.2f}"
                                          for t in tasks))
    if args.plot:
        plot(results, args.plot, f"{args.algo} on {args.env}")
    print(json.dumps({"bench": "ued", "algo": args.algo, "env": args.env, "steps": args.steps,
                      "num_envs": args.num_envs, "overrides": args.overrides,
                      "teachers": results}))


def _tags(run_dir: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return acc.Tags()["scalars"]


if __name__ == "__main__":
    main()
