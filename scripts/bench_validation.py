"""What the per-step action checks cost the trainers: ``validate_actions=always`` (a host sync
every step) against ``first`` (checked during the first episodes, then off), alternated in one
run, and printed as a table and one JSON line with the ratio.

    python scripts/bench_validation.py --algo qmix --env lbf:8x8-2p-3f --copies 16 --steps 20000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from marl.config import load_config
from marl.train import Trainer


def steps_per_s(algo: str, env: str, copies: int, steps: int, mode: str, runs_dir: str,
                name: str) -> float:
    cfg = load_config(algo, env, flags=dict(
        steps=steps, num_envs=copies, progress=False, tensorboard=False, test_interval=0,
        test_episodes=1, save_replay=False, runs_dir=runs_dir, name=name),
        overrides=(f"validate_actions={mode}",))
    trainer = Trainer(cfg)
    start = time.perf_counter()
    trainer.run()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="qmix")
    parser.add_argument("--env", default="lbf:8x8-2p-3f")
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rates: dict[str, list[float]] = {"always": [], "first": []}
    with tempfile.TemporaryDirectory() as runs_dir:
        for i in range(args.rounds):
            for mode in rates:  # alternate, so drifts in machine load hit both
                rates[mode].append(steps_per_s(args.algo, args.env, args.copies, args.steps,
                                               mode, runs_dir, f"{mode}-{i}"))
    print(f"{args.algo} on {args.env}, {args.copies} copies, {args.steps} steps, "
          f"{args.threads} thread(s)")
    print(f"{'validate_actions':<18}{'median steps/s':>16}  runs")
    for mode, values in rates.items():
        print(f"{mode:<18}{statistics.median(values):>16,.0f}  "
              + ", ".join(f"{v:,.0f}" for v in values))
    ratio = statistics.median(rates["first"]) / statistics.median(rates["always"])
    print(json.dumps({"algo": args.algo, "env": args.env, "copies": args.copies,
                      "steps": args.steps, "always": rates["always"], "first": rates["first"],
                      "first_over_always": round(ratio, 3)}))


if __name__ == "__main__":
    main()
