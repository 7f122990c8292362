"""Environment steps per second: native batched LBF beside the ``lbforaging`` package.

Both run in the same process, one after the other, with uniformly random actions (unavailable
ones act as NONE in both). An "env step" is one step of one copy; native LBF runs with input
validation off (``validate=False``), as a trainer would. One copy on the CPU is what ``make``
gives there (``LBFOne``: the same rules on Python integers), with ``LBFEnv``'s tensor code at
one copy beside it. Prints a table, then one JSON line.

    python scripts/bench_envs.py                     # full run (a few minutes on 2 cores)
    python scripts/bench_envs.py --copies 1,64 --seconds 0.5
    python scripts/bench_envs.py --threads 1      # one intra-op thread: faster on 2 cores
    python scripts/bench_envs.py --copies 4096 --threads 1 --rounds 4   # medians and ranges
    python scripts/bench_envs.py --copies 4096 --compile   # the step compiled, beside eager
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import numpy as np
import torch

from marl.envs import make, parallel_env
from marl.envs.lbf import LBFEnv, parse_id

# Our id → (lbforaging gymnasium id, extra kwargs). lbforaging registers up to 4 food items.
ENVS = {
    "8x8-2p-3f": ("Foraging-8x8-2p-3f-v3", {}),
    "15x15-4p-5f": ("Foraging-15x15-4p-4f-v3", {"max_num_food": 5}),
}


def bench_lbforaging(gym_id: str, kwargs: dict, seconds: float, seed: int = 0) -> float:
    """Steps/s of one ``lbforaging`` env stepped in a loop, resetting when an episode ends."""
    import gymnasium as gym
    import lbforaging  # noqa: F401  (registers the ids)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(gym_id, **kwargs)
        env.reset(seed=seed)
        n = env.unwrapped.n_agents
        actions = [tuple(a) for a in np.random.default_rng(seed).integers(0, 6, (4096, n))]
        steps, start = 0, time.perf_counter()
        while True:
            for _ in range(200):
                _, _, done, _, _ = env.step(actions[steps % len(actions)])
                steps += 1
                if done:
                    env.reset()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return steps / elapsed


def bench_native(env_id: str, copies: int, device: str, seconds: float, seed: int = 0,
                 tensor: bool = False, compiled: bool = False) -> float:
    """Steps/s (copies × batched steps) of native LBF with ``copies`` copies, as ``make`` gives
    it (one copy on the CPU: ``LBFOne``, Python integers) or, with ``tensor``, ``LBFEnv``'s
    tensor code whatever the count; ``compiled``: its step through ``torch.compile`` (compiled
    during the warm-up, which is not timed)."""
    if tensor:
        env = LBFEnv(copies, device, validate=False, seed=seed,
                     **parse_id(env_id.removeprefix("lbf:")))
    else:
        env = make(env_id, num_envs=copies, device=device, validate=False, seed=seed)
    if compiled:
        env.compile()
    env.reset(seed=seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    bank = [
        torch.randint(0, 6, (copies, env.spec.n_agents), generator=gen, device=device)
        for _ in range(8)
    ]
    for a in bank:  # warm-up
        env.step(a)
    sync = torch.cuda.synchronize if env.device.type == "cuda" else (lambda: None)
    sync()
    steps, start = 0, time.perf_counter()
    while True:
        for a in bank:
            env.step(a)
        steps += len(bank)
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps * copies / elapsed


def bench_pettingzoo(env_id: str, seconds: float, seed: int = 0) -> float:
    """Steps/s of the PettingZoo face (one copy, dict in, dict out)."""
    env = parallel_env(env_id)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    steps, start = 0, time.perf_counter()
    while True:
        for _ in range(100):
            env.step({a: int(rng.integers(6)) for a in env.agents})
            steps += 1
            if not env.agents:
                env.reset()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def run(envs: list[str], copies: list[int], device: str, seconds: float,
        rounds: int = 1, compiled: bool = False) -> dict:
    """Measure everything ``rounds`` times, print the table, return the results.

    Each round measures ``lbforaging`` and then every native variant, so a ratio compares
    figures taken a few seconds apart; the table gives the medians over rounds (of steps/s,
    and of each round's ratio) and, with more than one round, the range of the ratios: a
    shared machine's speed drifts by more than the differences worth measuring."""
    rows, results = [], []
    for name in envs:
        gym_id, kwargs = ENVS[name]
        # (label, impl, copies, tensor code): one copy on the CPU is LBFOne from make, beside
        # LBFEnv's tensor code; impl native_compiled is native with its step compiled
        variants = [("native, PettingZoo face", "pettingzoo", 1, False)]
        for n in copies:
            variants += ([("native, one copy in Python", "native_one", 1, False),
                          ("native VecEnv (cpu)", "native", 1, True)]
                         if n == 1 and device == "cpu"
                         else [(f"native VecEnv ({device})", "native", n, False)])
            if compiled and n > 1:
                variants.append((f"native VecEnv ({device}), compiled", "native_compiled", n,
                                 False))
        refs: list[float] = []
        figures: list[list[float]] = [[] for _ in variants]
        for _ in range(rounds):
            refs.append(bench_lbforaging(gym_id, kwargs, seconds))
            for figure, (_, impl, n, tensor) in zip(figures, variants, strict=True):
                figure.append(bench_pettingzoo(f"lbf:{name}", seconds) if impl == "pettingzoo"
                              else bench_native(f"lbf:{name}", n, device, seconds, tensor=tensor,
                                                compiled=impl == "native_compiled"))
        ref = statistics.median(refs)
        rows.append((name, "lbforaging (gymnasium, loop)", 1, ref, []))
        for figure, (label, impl, n, _) in zip(figures, variants, strict=True):
            ratios = [sps / r for sps, r in zip(figure, refs, strict=True)]
            rows.append((name, label, n, statistics.median(figure), ratios))
            results.append({"env": name, "impl": impl, "copies": n,
                            "steps_per_s": statistics.median(figure),
                            "ratio": statistics.median(ratios),
                            "rounds_steps_per_s": figure, "rounds_ratio": ratios})
        results.append({"env": name, "impl": "lbforaging", "copies": 1, "steps_per_s": ref,
                        "ratio": 1.0, "rounds_steps_per_s": refs, "rounds_ratio": [1.0] * rounds})
    spread = rounds > 1
    print(f"{'env':<13} {'implementation':<30} {'copies':>7} {'steps/s':>13} {'× lbforaging':>13}"
          + (f" {'ratio range':>17}" if spread else ""))
    for name, impl, n, sps, ratios in rows:  # the reference's own row: no ratios
        line = f"{name:<13} {impl:<30} {n:>7} {sps:>13,.0f} "
        line += f"{statistics.median(ratios):>12.2f}×" if ratios else f"{1:>12.2f}×"
        if spread and ratios:
            line += f" {min(ratios):>8.2f}–{max(ratios):.2f}×"
        print(line)
    return {
        "bench": "envs",
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "rounds": rounds,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated LBF ids")
    parser.add_argument("--copies", default="1,64,1024,4096,16384")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure everything this many times, lbforaging first in each round")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--compile", action="store_true",
                        help="also each count above one with its step through torch.compile")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    envs = args.envs.split(",")
    unknown = [e for e in envs if e not in ENVS]
    if unknown:
        parser.error(f"unknown env(s) {unknown}; choose from {list(ENVS)}")
    copies = [int(c) for c in args.copies.split(",")]
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: expected at least 1")
    print(json.dumps(run(envs, copies, args.device, args.seconds, args.rounds, args.compile)))


if __name__ == "__main__":
    main()
