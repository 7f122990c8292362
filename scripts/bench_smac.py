"""Environment steps per second of the built-in SMAC simulator, by map and number of copies.

Random available actions, input validation off (as a trainer runs it; ``--validate``: on, as
``make`` gives it). An "env step" is one step of one copy. The ratio is against the same map
stepped one copy at a time in this run (the StarCraft II game itself cannot run on a machine
without it). Prints a table, then one JSON line.

    python scripts/bench_smac.py                          # 3m and 27m_vs_30m, 1 to 4,096 copies
    python scripts/bench_smac.py --maps 2s3z --copies 1 1024 --seconds 1
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from marl.envs import make


def bench(name: str, copies: int, seconds: float, device: str, seed: int = 0,
          compiled: bool = False, validate: bool = False) -> float:
    env = make(f"smac:{name}", num_envs=copies, device=device, validate=validate, seed=seed)
    if compiled:
        env.compile()
    obs = env.reset(seed=seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    noise = [torch.rand(obs.avail.shape, generator=gen, device=device) for _ in range(8)]
    for i in range(3):  # warm up
        obs = env.step(noise[i].masked_fill(~obs.avail, -1).argmax(-1)).obs
    steps, start = 0, time.perf_counter()
    while True:
        for _ in range(5):
            obs = env.step(noise[steps % 8].masked_fill(~obs.avail, -1).argmax(-1)).obs
            steps += 1
        if device != "cpu":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps * copies / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=["3m", "27m_vs_30m"])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--compile", action="store_true",
                        help="the step through torch.compile (BatchedEnv.compile)")
    parser.add_argument("--validate", action="store_true",
                        help="check every action batch, as make() does by default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.maps:
        single = None
        for copies in args.copies:
            rate = bench(name, copies, args.seconds, args.device, compiled=args.compile,
                         validate=args.validate)
            single = rate if copies == 1 else single
            rows.append({"map": name, "copies": copies, "steps_per_s": round(rate, 1),
                         "vs_one_copy": round(rate / single, 2) if single else None})
    print(f"smac simulator, {args.device}, torch threads {torch.get_num_threads()}"
          f"{', compiled step' if args.compile else ''}"
          f", validation {'on' if args.validate else 'off'}")
    print(f"{'map':<14}{'copies':>8}{'steps/s':>12}{'vs 1 copy':>11}")
    for r in rows:
        ratio = f"{r['vs_one_copy']:>10.1f}x" if r["vs_one_copy"] else f"{'-':>11}"
        print(f"{r['map']:<14}{r['copies']:>8}{r['steps_per_s']:>12,.0f}{ratio}")
    print(json.dumps({"bench": "smac", "device": args.device, "compiled": args.compile,
                      "validate": args.validate,
                      "threads": torch.get_num_threads(), "rows": rows}))


if __name__ == "__main__":
    main()
