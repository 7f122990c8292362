"""Env steps per second through the PettingZoo face, beside ``lbforaging``'s own loop.

Every third-party client (TorchRL, RLlib, SuperSuit, EPyMARL through the gymnasium ids) steps
one copy through :class:`marl.envs.pettingzoo_face.PettingZooEnv`, so this is the speed they
see. Rounds alternate between the face on ``lbf:8x8-2p-3f`` and the ``lbforaging`` package's
``Foraging-8x8-2p-3f-v3`` (through ``gymnasium.make``), each stepped in a plain Python loop with
random *available* actions (the same sampling code for both) and reset when an episode ends;
alternating keeps a busy machine from favouring either. SMAC 3m goes through the face too (it
has no reference here). Prints a table, then one JSON line.

    python scripts/bench_face.py                       # 5 rounds of 2 s each
    python scripts/bench_face.py --rounds 3 --seconds 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from marl.envs import parallel_env

LBF_ID, LBFORAGING_ID = "lbf:8x8-2p-3f", "Foraging-8x8-2p-3f-v3"


def _timed(step: Callable[[], None], seconds: float) -> float:
    """Calls of ``step`` per second over about ``seconds`` (after a short warm-up)."""
    for _ in range(50):
        step()
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(100):
            step()
        calls += 100
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed


def _pick(mask: np.ndarray, u: float) -> int:
    """The available action at quantile ``u`` of ``mask``'s available ones (uniform for a
    uniform ``u``)."""
    choices = np.flatnonzero(mask)
    return int(choices[int(u * len(choices))])


def face_stepper(env_id: str, seed: int = 0) -> Callable[[], None]:
    """One step of the PettingZoo face with random available actions (resets at the end)."""
    env = parallel_env(env_id)
    rng = np.random.default_rng(seed)
    _, infos = env.reset(seed=seed)
    state = {"infos": infos}

    def step() -> None:
        infos = state["infos"]
        u = rng.random(len(env.agents))
        actions = {a: _pick(infos[a]["action_mask"], u[i]) for i, a in enumerate(env.agents)}
        _, _, _, _, infos = env.step(actions)
        if not env.agents:
            _, infos = env.reset()
        state["infos"] = infos

    return step


def lbforaging_stepper(seed: int = 0) -> Callable[[], None]:
    """One step of lbforaging's env (gymnasium.make) with random valid actions."""
    import gymnasium as gym
    import lbforaging  # noqa: F401  (registers the ids)

    env = gym.make(LBFORAGING_ID)
    foraging = env.unwrapped
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    mask = np.zeros((len(foraging.players), 6), bool)

    def step() -> None:
        mask[:] = False
        for i, player in enumerate(foraging.players):
            mask[i, [a.value for a in foraging._valid_actions[player]]] = True
        u = rng.random(len(mask))
        actions = tuple(_pick(mask[i], u[i]) for i in range(len(mask)))
        _, _, done, truncated, _ = env.step(actions)
        if done or truncated:
            env.reset()

    return step


def run(rounds: int, seconds: float) -> dict:
    """Alternate the measurements ``rounds`` times; print the table; return the results."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbforaging's list rewards upset gymnasium's checker
        steppers = {
            "lbforaging": lbforaging_stepper(),
            "face_lbf": face_stepper(LBF_ID),
            "face_smac_3m": face_stepper("smac:3m"),
        }
        samples: dict[str, list[float]] = {k: [] for k in steppers}
        for _ in range(rounds):
            for name, step in steppers.items():
                samples[name].append(_timed(step, seconds))
    median = {k: statistics.median(v) for k, v in samples.items()}
    ratio = median["face_lbf"] / median["lbforaging"]
    rows = [
        ("lbf 8x8-2p-3f", "lbforaging 2.0.0 (gymnasium.make, loop)", median["lbforaging"], 1.0),
        ("lbf 8x8-2p-3f", "PettingZoo face (one copy)", median["face_lbf"], ratio),
        ("smac 3m", "PettingZoo face (one copy)", median["face_smac_3m"], None),
    ]
    print(f"{rounds} alternating rounds of {seconds:g} s; median env steps/s "
          f"(per-round: min–max)")
    print(f"{'env':<14} {'implementation':<42} {'steps/s':>9} {'range':>15} {'× lbforaging':>13}")
    for (env, impl, sps, r), key in zip(rows, steppers, strict=True):
        lo, hi = min(samples[key]), max(samples[key])
        rel = f"{r:.2f}×" if r is not None else "–"
        print(f"{env:<14} {impl:<42} {sps:>9,.0f} {f'{lo:,.0f}–{hi:,.0f}':>15} {rel:>13}")
    return {
        "bench": "face",
        "rounds": rounds,
        "seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "lbforaging_steps_per_s": round(median["lbforaging"], 1),
        "face_lbf_steps_per_s": round(median["face_lbf"], 1),
        "face_over_lbforaging": round(ratio, 3),
        "face_smac_3m_steps_per_s": round(median["face_smac_3m"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(json.dumps(run(args.rounds, args.seconds)))


if __name__ == "__main__":
    main()
