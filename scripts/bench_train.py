"""End-to-end training speed (collection + updates) of QMIX and IQL on LBF.

Runs the real training loop from scratch with EPyMARL's default update schedule — one update
of a 32-episode batch per collected episode, EPyMARL's hyperparameters — for ``--steps`` env
steps at each number of parallel copies, and prints a table and one JSON line. Greedy tests are
cut to one episode at the start and the end so the figure is training speed.

EPyMARL cannot be installed on a machine without network access to its repository, so the
reference figures are the ones measured for it on this 2-core machine and quoted in the
project's issue tracker (QMIX about 330, IQL about 210 env steps/s, same task and schedule);
pass ``--epymarl-qmix`` / ``--epymarl-iql`` to compare against your own measurement.

    python scripts/bench_train.py --steps 50000 --copies 1 16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from marl.config import load_config
from marl.train import Trainer


def measure(algo: str, env: str, steps: int, copies: int, seed: int, runs_dir: str) -> dict:
    cfg = load_config(algo, env, flags=dict(
        steps=steps, num_envs=copies, seed=seed, progress=False, tensorboard=False,
        test_interval=0, test_episodes=1, save_interval=0, save_replay=False,
        runs_dir=runs_dir, name=f"{algo}-{copies}"))
    trainer = Trainer(cfg)
    start = time.perf_counter()
    summary = trainer.run()
    wall = time.perf_counter() - start
    return {"algo": algo, "copies": copies, "env_steps": summary["env_steps"],
            "episodes": summary["episodes"], "updates": summary["updates"],
            "wall_s": round(wall, 2), "steps_per_s": round(summary["env_steps"] / wall, 1),
            "updates_per_s": round(summary["updates"] / wall, 1),
            "test_return": summary["test_return_mean"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="lbf:8x8-2p-3f")
    parser.add_argument("--algos", nargs="+", default=["qmix", "iql"])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--epymarl-qmix", type=float, default=330.0)
    parser.add_argument("--epymarl-iql", type=float, default=210.0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reference = {"qmix": args.epymarl_qmix, "iql": args.epymarl_iql}
    rows = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for algo in args.algos:
            for copies in args.copies:
                row = measure(algo, args.env, args.steps, copies, args.seed, runs_dir)
                ref = reference.get(algo)
                row["epymarl_steps_per_s"] = ref
                row["ratio"] = round(row["steps_per_s"] / ref, 2) if ref else None
                rows.append(row)
    print(f"{args.env}, {args.steps} env steps from scratch, EPyMARL defaults, "
          f"1 update / episode, torch threads {torch.get_num_threads()}")
    print(f"{'algo':<6}{'copies':>7}{'episodes':>10}{'updates':>9}{'wall s':>9}"
          f"{'steps/s':>10}{'upd/s':>8}{'EPyMARL':>9}{'ratio':>8}")
    for r in rows:
        print(f"{r['algo']:<6}{r['copies']:>7}{r['episodes']:>10}{r['updates']:>9}"
              f"{r['wall_s']:>9.1f}{r['steps_per_s']:>10.0f}{r['updates_per_s']:>8.1f}"
              f"{r['epymarl_steps_per_s'] or 0:>9.0f}{r['ratio'] or 0:>7.1f}x")
    print(json.dumps({"bench": "train", "env": args.env, "steps": args.steps,
                      "threads": torch.get_num_threads(), "rows": rows}))


if __name__ == "__main__":
    main()
