"""How a sweep scales with concurrent trials: trials per hour at each concurrency.

Runs the same sweep (``--trials`` seeds of one small training) from scratch at every
``--concurrent`` value, on Ray on this machine (``--backend local``: subprocesses), each
into a fresh folder, and prints a table (wall-clock, trials per hour, speed-up over the first
concurrency) and one JSON line. What else ran on the machine is for the reader to state.

    python scripts/bench_sweep.py --trials 8 --concurrent 1 2 --steps 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from marl.sweep import run_local
from marl.sweep_spec import SweepSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="iql")
    parser.add_argument("--env", default="lbf:8x8-2p-3f")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backend", choices=("ray", "local"), default="ray")
    args = parser.parse_args()
    rows = []
    if args.backend == "ray":  # started before the clock: its start-up is no trial's
        import ray

        ray.init(num_cpus=max(args.concurrent), include_dashboard=False, log_to_driver=False)
    for concurrent in args.concurrent:
        spec = SweepSpec(algos=[args.algo], envs=[args.env],
                         seeds=list(range(1, args.trials + 1)), steps=args.steps,
                         num_envs=args.num_envs, concurrent=concurrent, retries=0,
                         overrides=[f"test_interval={args.steps}", "test_episodes=10"])
        with tempfile.TemporaryDirectory() as runs_dir:
            start = time.perf_counter()
            if args.backend == "ray":
                from marl.ray_sweep import run_on_ray

                results = run_on_ray(spec, runs_dir, num_cpus=max(args.concurrent))
            else:
                results = run_local(spec.jobs(), runs_dir, concurrent=concurrent)
            wall = time.perf_counter() - start
        done = sum(r.status == "done" for r in results)
        rows.append({"concurrent": concurrent, "trials": len(results), "done": done,
                     "wall_s": round(wall, 1), "trials_per_hour": round(done * 3600 / wall, 1)})
    base = rows[0]["trials_per_hour"]
    print(f"{args.trials} trials of {args.algo} on {args.env}, {args.steps} env steps, "
          f"{args.num_envs} copies, one torch thread each; backend {args.backend}")
    print(f"{'concurrent':>10}{'done':>6}{'wall s':>9}{'trials/h':>10}{'speed-up':>10}")
    for r in rows:
        print(f"{r['concurrent']:>10}{r['done']:>6}{r['wall_s']:>9.1f}"
              f"{r['trials_per_hour']:>10.1f}{r['trials_per_hour'] / base:>9.2f}x")
    print(json.dumps({"bench": "sweep", "backend": args.backend, "algo": args.algo,
                      "env": args.env, "steps": args.steps, "rows": rows}))


if __name__ == "__main__":
    main()
