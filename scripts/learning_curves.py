"""Learning curves: greedy test return against env steps and wall-clock, over seeds.

Runs ``marl train`` for every (algorithm, environment, seed) — ``--jobs`` at a time, each in
its own process with one torch thread — then reads the greedy test returns back from the
runs' TensorBoard files and prints a table (mean over seeds at each test point, and the
wall-clock of each run) and one JSON line with every curve. Runs that already finished in
``--runs-dir`` are read, not re-run, and interrupted ones are resumed from their checkpoints,
so a sweep can be extended or continued.

    python scripts/learning_curves.py --algos iql vdn qmix \\
        --envs lbf:8x8-2p-2f-coop lbf:8x8-2p-3f --seeds 1 2 3 --steps 500000 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_name(algo: str, env: str, seed: int) -> str:
    return f"{algo}_{env.replace(':', '-')}_seed{seed}"


def launch(algo: str, env: str, seed: int, args: argparse.Namespace) -> dict:
    name = run_name(algo, env, seed)
    summary_file = Path(args.runs_dir) / name / "summary.json"
    if summary_file.is_file():
        return json.loads(summary_file.read_text())
    run_dir = Path(args.runs_dir) / name
    if (run_dir / "checkpoints").is_dir():  # an interrupted run: continue it
        cmd = [sys.executable, "-m", "marl.cli", "train", "--resume", str(run_dir),
               "--steps", str(args.steps), "--no-progress"]
    else:
        cmd = [sys.executable, "-m", "marl.cli", "train", "--algo", algo, "--env", env,
               "--steps", str(args.steps), "--seed", str(seed), "--num-envs",
               str(args.num_envs), "--runs-dir", args.runs_dir, "--name", name,
               "--no-progress", "threads=1", f"test_interval={args.test_interval}",
               *args.overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ},
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    summary_file.write_text(json.dumps(summary))
    return summary


def test_curve(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """``(env step, value)`` of the scalar ``tag`` (e.g. ``test/return_mean``) of a run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in acc.Scalars(tag)]


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
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    jobs = [(a, e, s) for e in args.envs for a in args.algos for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        summaries = list(pool.map(lambda j: launch(*j, args), jobs))
    curves: dict[str, dict] = {}
    for (algo, env, seed), summary in zip(jobs, summaries, strict=True):
        key = f"{algo} {env}"
        run_dir = Path(args.runs_dir) / run_name(algo, env, seed)
        entry = curves.setdefault(key, {"algo": algo, "env": env, "runs": []})
        entry["runs"].append({"seed": seed, "wall_s": summary["wall_s"],
                              "steps_per_s": summary["steps_per_s"],
                              "final": summary["test_return_mean"],
                              "final_win_rate": summary.get("test_win_rate"),
                              "curve": test_curve(run_dir, "test/return_mean"),
                              "win_curve": test_curve(run_dir, "test/win_rate")})
    for key, entry in curves.items():
        runs = entry["runs"]
        walls = ", ".join(f"{r['wall_s']:.0f}s" for r in runs)
        for field, what in (("curve", "greedy test return"), ("win_curve", "test win rate")):
            steps = sorted({s for r in runs for s, _ in r[field]})
            if not steps:
                continue
            print(f"\n{key}: {what} (mean over {len(runs)} seeds), "
                  f"wall-clock per run {walls}")
            for step in steps:
                vals = [v for r in runs for s, v in r[field] if s == step]
                print(f"  {step:>9,d} steps  {sum(vals) / len(vals):.3f}  "
                      f"({', '.join(f'{v:.2f}' for v in vals)})")
    print(json.dumps({"bench": "learning_curves", "steps": args.steps,
                      "num_envs": args.num_envs, "curves": list(curves.values())}))


if __name__ == "__main__":
    main()
