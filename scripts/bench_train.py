"""End-to-end training speed (collection + updates) on LBF, against a reference.

Runs the real training loop from scratch with EPyMARL's defaults for each algorithm (QMIX/IQL:
one update of a 32-episode batch per collected episode; IPPO/MAPPO: one PPO update per
rollout of ``episode_limit`` steps of every copy) for ``--steps`` env steps at each number of
parallel copies, and prints a table and one JSON line. Greedy tests are cut to one episode at
the start and the end so the figure is training speed. ``key=value`` items after ``--set``
override the config (e.g. ``--set use_rnn=false``).

The reference is either
- ``--reference-env``: the same algorithm and settings on another environment, measured in the
  same run — e.g. ``lbforaging:Foraging-8x8-2p-3f-v3`` (the lbforaging package stepped one copy
  at a time, as EPyMARL does) at ``--reference-copies`` copies (EPyMARL's 10 for PPO); or
- the EPyMARL figures measured on this 2-core machine and quoted in the project's issue tracker
  (QMIX about 330, IQL about 210 env steps/s; EPyMARL cannot be installed without network
  access to its repository): ``--epymarl-qmix`` / ``--epymarl-iql`` replace them.

    python scripts/bench_train.py --steps 50000 --copies 1 16
    python scripts/bench_train.py --algos mappo --copies 10 256 1024 --steps 1000000 \
        --reference-env lbforaging:Foraging-8x8-2p-3f-v3 --reference-steps 50000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from marl.config import load_config
from marl.train import Trainer


def measure(algo: str, env: str, steps: int, copies: int, seed: int, runs_dir: str,
            overrides: tuple[str, ...] = ()) -> dict:
    cfg = load_config(algo, env, flags=dict(
        steps=steps, num_envs=copies, seed=seed, progress=False, tensorboard=False,
        test_interval=0, test_episodes=1, save_interval=0, save_replay=False,
        runs_dir=runs_dir, name=f"{algo}-{copies}"), overrides=overrides)
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
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run")
    parser.add_argument("--reference-env", default="",
                        help="measure the reference on this env in the same run")
    parser.add_argument("--reference-copies", type=int, default=10)
    parser.add_argument("--reference-steps", type=int, default=0, help="0: --steps")
    parser.add_argument("--epymarl-qmix", type=float, default=330.0)
    parser.add_argument("--epymarl-iql", type=float, default=210.0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    quoted = {"qmix": args.epymarl_qmix, "iql": args.epymarl_iql}
    overrides = tuple(args.set)
    rows = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for algo in args.algos:
            if args.reference_env:
                ref_row = measure(algo, args.reference_env,
                                  args.reference_steps or args.steps, args.reference_copies,
                                  args.seed, runs_dir, overrides)
                ref_row["env"] = args.reference_env
                ref_row["reference_steps_per_s"], ref_row["ratio"] = None, None
                rows.append(ref_row)
                ref = ref_row["steps_per_s"]
            else:
                ref = quoted.get(algo)
            for copies in args.copies:
                row = measure(algo, args.env, args.steps, copies, args.seed, runs_dir,
                              overrides)
                row["env"] = args.env
                row["reference_steps_per_s"] = ref
                row["ratio"] = round(row["steps_per_s"] / ref, 2) if ref else None
                rows.append(row)
    reference = (f"reference: {args.reference_env}, {args.reference_copies} copies"
                 if args.reference_env else "reference: EPyMARL figures quoted in the tracker")
    print(f"{args.steps} env steps from scratch, EPyMARL defaults"
          f"{' + ' + ' '.join(overrides) if overrides else ''}, torch threads "
          f"{torch.get_num_threads()}; {reference}")
    print(f"{'algo':<6}{'env':<34}{'copies':>7}{'episodes':>10}{'updates':>9}{'wall s':>9}"
          f"{'steps/s':>10}{'upd/s':>8}{'ref/s':>9}{'ratio':>8}")
    for r in rows:
        ratio = f"{r['ratio']:>7.1f}x" if r["ratio"] else f"{'-':>8}"
        print(f"{r['algo']:<6}{r['env']:<34}{r['copies']:>7}{r['episodes']:>10}"
              f"{r['updates']:>9}{r['wall_s']:>9.1f}{r['steps_per_s']:>10.0f}"
              f"{r['updates_per_s']:>8.1f}{r['reference_steps_per_s'] or 0:>9.0f}{ratio}")
    print(json.dumps({"bench": "train", "env": args.env, "steps": args.steps,
                      "overrides": list(overrides), "threads": torch.get_num_threads(),
                      "rows": rows}))


if __name__ == "__main__":
    main()
