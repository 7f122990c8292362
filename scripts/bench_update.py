"""Milliseconds per update of a replay learner (IQL, VDN, QMIX) on a fixed batch of episodes.

The learner is built from the algorithm's config on the environment (``key=value`` overrides
as for ``marl train``); the batch is 32 random episodes whose lengths are drawn uniformly from
``--lengths LOW HIGH`` (an episode batch is as long as its longest episode, so the spread says
how much of it is padding). One torch thread. Compare two versions of the package by running
this script under each, alternating. Prints a table, then one JSON line.

    python scripts/bench_update.py --algo qmix --env lbf:8x8-2p-3f --lengths 20 50
    python scripts/bench_update.py --algo qmix --env smac:2s3z --lengths 20 60 use_rnn=true
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from marl.config import load_config
from marl.replay import EpisodeBatch
from marl.train import build_env, build_learner


def random_batch(learner, spec, episodes: int, low: int, high: int,
                 gen: torch.Generator) -> EpisodeBatch:
    """Random episodes of lengths in ``[low, high]``: every action available, terminated at
    their last step, padded to ``high`` as the replay pads them."""
    batch = EpisodeBatch()
    length = torch.randint(low, high + 1, (episodes,), generator=gen)
    length[0] = high
    for name, f in learner.replay_fields().items():
        shape = (episodes, high + 1 if f.per_state else high, *f.shape)
        if f.dtype == torch.bool:
            batch[name] = torch.full(shape, name == "avail", dtype=torch.bool)
        elif f.dtype == torch.long:
            batch[name] = torch.randint(0, spec.n_actions, shape, generator=gen)
        else:
            batch[name] = torch.rand(shape, generator=gen)
    batch["filled"] = torch.arange(high)[None] < length[:, None]
    batch["terminated"][torch.arange(episodes), length - 1] = True
    batch["length"] = length
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="qmix", choices=("iql", "vdn", "qmix"))
    parser.add_argument("--env", default="lbf:8x8-2p-3f")
    parser.add_argument("--lengths", type=int, nargs=2, default=[20, 50], metavar=("LOW", "HIGH"))
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    low, high = args.lengths
    if not 1 <= low <= high:
        parser.error(f"--lengths {low} {high}: expected 1 <= LOW <= HIGH")
    torch.set_num_threads(1)
    cfg = load_config(args.algo, args.env, overrides=tuple(args.overrides))
    env = build_env(cfg, 1, torch.device("cpu"))
    learner = build_learner(cfg, env.spec, torch.device("cpu"))
    gen = torch.Generator().manual_seed(args.seed)
    batch = random_batch(learner, env.spec, cfg.replay.batch_size, low, high, gen)
    for _ in range(10):  # warm up
        learner.update(batch)
    start = time.perf_counter()
    for _ in range(args.updates):
        learner.update(batch)
    ms = (time.perf_counter() - start) / args.updates * 1e3
    print(f"{'algo':<6} {'env':<18} {'lengths':<9} {'ms/update':>10}")
    print(f"{args.algo:<6} {args.env:<18} {f'{low}-{high}':<9} {ms:>10.2f}")
    print(json.dumps({"bench": "update", "algo": args.algo, "env": args.env,
                      "lengths": [low, high], "overrides": args.overrides,
                      "updates": args.updates, "ms_per_update": round(ms, 3)}))


if __name__ == "__main__":
    main()
