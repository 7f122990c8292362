"""Torch threads against training speed, with and without a competing process.

For every algorithm (its default network, EPyMARL's defaults) it trains from scratch for
``--steps`` env steps with 1 and with 2 (``--threads``) torch intra-op threads, alternating,
first with nothing else started by the script and then beside ``--load`` busy processes (each
a loop of single-threaded matrix products, as another user's job would be). Each measurement
is its own process. Prints a table (env steps/s, and each thread count against one thread)
and one JSON line; what else ran on the machine is for the reader to state.

    python scripts/bench_threads.py --algos qmix iql ippo mappo --steps 5000 --load 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import time


def busy() -> None:  # a competing single-threaded job
    import torch

    torch.set_num_threads(1)
    a = torch.rand(256, 256)
    while True:
        a = (a @ a).clamp(-1, 1)


MEASURE = """
import json, sys, tempfile, time
from marl.config import load_config
from marl.train import Trainer
algo, env = sys.argv[1], sys.argv[2]
steps, copies, threads = (int(a) for a in sys.argv[3:6])
with tempfile.TemporaryDirectory() as d:
    cfg = load_config(algo, env, flags=dict(steps=steps, num_envs=copies, seed=1, progress=False,
        tensorboard=False, test_interval=0, test_episodes=1, save_interval=0, save_replay=False,
        runs_dir=d, name="t", threads=threads))
    start = time.perf_counter()
    summary = Trainer(cfg).run()
print(json.dumps({"steps_per_s": summary["env_steps"] / (time.perf_counter() - start)}))
"""


def measure(algo: str, env: str, steps: int, copies: int, threads: int) -> float:
    out = subprocess.run([sys.executable, "-c", MEASURE, algo, env, str(steps), str(copies),
                          str(threads)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["qmix", "iql", "ippo", "mappo"])
    parser.add_argument("--env", default="lbf:8x8-2p-3f")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2, help="alternations per setting")
    parser.add_argument("--load", type=int, default=1, help="busy processes for the loaded "
                        "measurements (0: idle only)")
    args = parser.parse_args()
    rows = []
    for load in sorted({0, args.load}):
        workers = [mp.Process(target=busy, daemon=True) for _ in range(load)]
        for w in workers:
            w.start()
        time.sleep(1.0 if load else 0.0)
        try:
            for algo in args.algos:
                figures: dict[int, list[float]] = {t: [] for t in args.threads}
                for _ in range(args.rounds):
                    for t in args.threads:
                        figures[t].append(measure(algo, args.env, args.steps, args.copies, t))
                base = statistics.median(figures[args.threads[0]])
                for t in args.threads:
                    value = statistics.median(figures[t])
                    rows.append({"algo": algo, "load": load, "threads": t,
                                 "steps_per_s": round(value, 1), "runs": figures[t],
                                 "vs_first": round(value / base, 2)})
        finally:
            for w in workers:
                w.terminate()
    print(f"{args.env}, {args.copies} copies, {args.steps} env steps from scratch, median of "
          f"{args.rounds} alternating runs")
    print(f"{'algo':<8}{'busy procs':>11}{'threads':>8}{'env steps/s':>13}"
          f"{'vs ' + str(args.threads[0]) + ' thr':>10}")
    for r in rows:
        print(f"{r['algo']:<8}{r['load']:>11}{r['threads']:>8}{r['steps_per_s']:>13,.0f}"
              f"{r['vs_first']:>9.2f}x")
    print(json.dumps({"bench": "threads", "env": args.env, "copies": args.copies,
                      "steps": args.steps, "rows": rows}))


if __name__ == "__main__":
    main()
