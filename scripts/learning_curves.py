"""Learning curves: greedy test return against env steps and wall-clock, over seeds.

Runs ``marl train`` for every (algorithm, environment, seed) — ``--jobs`` at a time, each in
its own process with one torch thread — then reads the greedy test returns back from the
runs' TensorBoard files and prints a table (mean over seeds at each test point the seeds
share, with its 95% bootstrap band from ``marl.report.curve_band``, and the wall-clock of each
run) and one JSON line with every curve. ``--report DIR`` also writes the ``marl report`` of
the sweep (curves, IQM and mean with intervals, probabilities of improvement; needs the
``report`` extra). Runs that already finished in ``--runs-dir`` are read, not re-run, and
interrupted ones are resumed from their checkpoints, so a sweep can be extended or continued.

    python scripts/learning_curves.py --algos iql vdn qmix \\
        --envs lbf:8x8-2p-2f-coop lbf:8x8-2p-3f --seeds 1 2 3 --steps 500000 --jobs 2 \\
        --report reports/curves
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from marl.report import curve_band, load_runs, write_report
from marl.sweep import Job, run_all, scalar_curve


def run_name(algo: str, env: str, seed: int) -> str:
    return f"{algo}_{env.replace(':', '-')}_seed{seed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["iql", "vdn", "qmix"])
    parser.add_argument("--envs", nargs="+", default=["lbf:8x8-2p-2f-coop", "lbf:8x8-2p-3f"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--test-interval", type=int, default=50_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs-dir", default="runs/curves")
    parser.add_argument("--report", default="", metavar="DIR",
                        help="also write the marl report of the sweep into DIR")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    jobs = [Job(run_name(a, e, s), a, e, s, args.steps, args.num_envs,
                (f"test_interval={args.test_interval}", *args.overrides))
            for e in args.envs for a in args.algos for s in args.seeds]
    summaries = run_all(jobs, args.runs_dir, args.jobs)
    curves: dict[str, dict] = {}
    for job, summary in zip(jobs, summaries, strict=True):
        algo, env, seed = job.algo, job.env, job.seed
        key = f"{algo} {env}"
        run_dir = Path(args.runs_dir) / run_name(algo, env, seed)
        entry = curves.setdefault(key, {"algo": algo, "env": env, "runs": []})
        entry["runs"].append({"seed": seed, "wall_s": summary["wall_s"],
                              "steps_per_s": summary["steps_per_s"],
                              "final": summary["test_return_mean"],
                              "final_win_rate": summary.get("test_win_rate"),
                              "curve": scalar_curve(run_dir, "test/return_mean"),
                              "win_curve": scalar_curve(run_dir, "test/win_rate")})
    for key, entry in curves.items():
        runs = entry["runs"]
        walls = ", ".join(f"{r['wall_s']:.0f}s" for r in runs)
        for field, what in (("curve", "greedy test return"), ("win_curve", "test win rate")):
            seeds = [r[field] for r in runs if r[field]]
            band = curve_band(seeds)
            if not band.x.size:
                continue
            print(f"\n{key}: {what} (mean [95% bootstrap band] over {len(seeds)} seeds, at the "
                  f"test steps they share), wall-clock per run {walls}")
            for i, step in enumerate(band.x.tolist()):
                values = ", ".join(f"{dict(c)[step]:.2f}" for c in seeds)
                print(f"  {step:>9,d} steps  {band.value[i]:.3f} [{band.lo[i]:.3f}, "
                      f"{band.hi[i]:.3f}]  ({values})")
    if args.report:
        finished = load_runs([Path(args.runs_dir) / job.name for job in jobs])
        print(f"\nreport: {write_report(finished, args.report)}")
    print(json.dumps({"bench": "learning_curves", "steps": args.steps,
                      "num_envs": args.num_envs, "curves": list(curves.values())}))


if __name__ == "__main__":
    main()
