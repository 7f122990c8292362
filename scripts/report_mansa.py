"""MANSA's trade-off: final greedy test return (or win rate) against the fraction of steps that
called centralised learning, over a sweep of switching costs and budgets.

For every switching cost ``c``, run budget and episode budget, and every seed, it runs (or
reads, when the run folder already holds its summary) a MANSA run; beside them, in the same
harness and budget of env steps, the baselines: IQL alone, QMIX alone, and random switching at
the CL rate MANSA measured with each setting (which tells whether *where* CL is used
matters). Prints a table (mean and 95% interval over seeds) and one JSON line, and draws the
metric against the CL fraction to a PNG (``--out``; needs matplotlib). ``--report DIR`` also
writes the ``marl report`` of the runs, each method as one algorithm (learning curves, IQM and
probabilities of improvement between the methods; needs the ``report`` extra).

    python scripts/report_mansa.py --env lbf:8x8-2p-3f --costs 0.01 0.05 0.2 \\
        --seeds 1 2 3 --steps 500000 --num-envs 16 --jobs 2 --out mansa_8x8.png \\
        --report reports/mansa_8x8
    python scripts/report_mansa.py --env smac:3m --costs 0.5 --run-budgets -1 100000 ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
from pathlib import Path

from marl.report import load_runs, write_report
from marl.sweep import Job, run_all

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262}  # Student's t, 97.5% quantile, by degrees of freedom


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval (Student's t over the seeds: with a handful
    of seeds of one task it is wider, and more honest, than a percentile bootstrap)."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, math.nan
    t = T95.get(len(values) - 1, 1.96)
    return m, t * statistics.stdev(values) / math.sqrt(len(values))


def tag(value: float) -> str:
    return f"{value:g}".replace("-", "m").replace(".", "p")


def label(method: str) -> str:
    """A method's name without the budgets left at their default (-1: none)."""
    return method.replace(" run_budget=-1", "").replace(" episode_budget=-1", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--costs", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    parser.add_argument("--run-budgets", type=int, nargs="+", default=[-1])
    parser.add_argument("--episode-budgets", type=int, nargs="+", default=[-1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--baselines", nargs="*", default=["iql", "qmix", "random"],
                        help="any of iql, qmix, random (random switching at MANSA's rate)")
    parser.add_argument("--runs-dir", default="runs/mansa")
    parser.add_argument("--out", default="", help="PNG of the metric against CL fraction")
    parser.add_argument("--report", default="", metavar="DIR",
                        help="also write the marl report of the runs (a method per algorithm)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="for every run (e.g. test_interval=50000)")
    args = parser.parse_args()
    env = args.env.replace(":", "-")

    def job(method: str, algo: str, seed: int, *extra: str) -> Job:
        return Job(f"{method}_{env}_seed{seed}", algo, args.env, seed, args.steps,
                   args.num_envs, (*args.overrides, *extra))

    settings = [(c, rb, eb) for c in args.costs for rb in args.run_budgets
                for eb in args.episode_budgets]
    groups: dict[str, list[Job]] = {}
    names = [f"mansa c={c:g} run_budget={rb} episode_budget={eb}" for c, rb, eb in settings]
    for name, (c, rb, eb) in zip(names, settings, strict=True):
        groups[name] = [
            job(f"mansa_c{tag(c)}_rb{tag(rb)}_eb{tag(eb)}", "mansa", s, f"switch_cost={c}",
                f"budget_run={rb}", f"budget_episode={eb}") for s in args.seeds]
    for algo in ("iql", "qmix"):
        if algo in args.baselines:
            groups[algo] = [job(algo, algo, s) for s in args.seeds]
    summaries = {name: run_all(jobs, args.runs_dir, args.jobs) for name, jobs in groups.items()}
    if "random" in args.baselines:  # switch at random, at the rate each setting measured
        for name, (_, rb, eb) in zip(names, settings, strict=True):
            rate = statistics.fmean(s["cl_fraction"] for s in summaries[name])
            key = f"random p={rate:.4f} (as {name})"
            groups[key] = [job(f"random_p{tag(round(rate, 4))}_rb{tag(rb)}_eb{tag(eb)}",
                               "mansa", s, "switcher=random", f"random_rate={rate:.4f}",
                               f"budget_run={rb}", f"budget_episode={eb}")
                           for s in args.seeds]
            summaries[key] = run_all(groups[key], args.runs_dir, args.jobs)

    metric = "test_win_rate" if all("test_win_rate" in s for runs in summaries.values()
                                    for s in runs) else "test_return_mean"
    rows = []
    print(f"\n{args.env}: {args.steps:,} env steps, seeds {args.seeds}; {metric} "
          "(mean ± 95% interval over seeds)")
    print(f"{'method':<58} {metric:>18} {'CL fraction':>12} {'CL calls':>10} {'wall s':>8}")
    for name, runs in summaries.items():
        m, ci = mean_ci([r[metric] for r in runs])
        fraction = statistics.fmean(r.get("cl_fraction", 1.0 if name == "qmix" else 0.0)
                                    for r in runs)
        calls = statistics.fmean(r.get("cl_calls", r["env_steps"] if name == "qmix" else 0)
                                 for r in runs)
        wall = statistics.fmean(r["wall_s"] for r in runs)
        rows.append({"method": name, "metric": metric, "mean": m, "ci95": ci,
                     "per_seed": [r[metric] for r in runs], "cl_fraction": fraction,
                     "cl_calls": calls, "wall_s": wall})
        print(f"{name:<58} {m:>11.3f} ± {ci:<5.3f} {fraction:>12.4f} {calls:>10.0f} "
              f"{wall:>8.0f}")
    if args.out:
        plot(rows, args, metric)
    if args.report:
        runs = [dataclasses.replace(run, algo=label(name)) for name, jobs in groups.items()
                for run in load_runs([Path(args.runs_dir) / j.name for j in jobs])]
        print(f"report: {write_report(runs, args.report)}")
    print(json.dumps({"bench": "report_mansa", "env": args.env, "steps": args.steps,
                      "seeds": args.seeds, "rows": rows}))


def plot(rows: list[dict], args: argparse.Namespace, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {"mansa": ("o", "tab:blue"), "random": ("s", "tab:orange"),
              "iql": ("^", "tab:green"), "qmix": ("v", "tab:red")}
    for row in rows:
        kind = row["method"].split()[0]
        marker, colour = styles.get(kind, ("x", "black"))
        ax.errorbar(row["cl_fraction"], row["mean"], yerr=None if math.isnan(row["ci95"])
                    else row["ci95"], fmt=marker, color=colour, capsize=3)
        ax.annotate(label(row["method"]).split(" (as")[0], (row["cl_fraction"], row["mean"]),
                    fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("fraction of training steps that called CL")
    ax.set_ylabel(metric.replace("_", " ") + " (final, mean ± 95% CI)")
    ax.set_title(f"{args.env}, {args.steps:,} steps, {len(args.seeds)} seeds")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)


if __name__ == "__main__":
    main()
