"""Milliseconds per update of a replay learner (IQL, VDN, QMIX) on a fixed batch of episodes.

The learner is built from the algorithm's config on the environment (``key=value`` overrides
as for ``marl train``); the batch is 32 random episodes whose lengths are drawn uniformly from
``--lengths LOW HIGH`` (an episode batch is as long as its longest episode, so the spread says
how much of it is padding). With ``--run RUN`` (a run folder or checkpoint of IQL, VDN or
QMIX saved with its replay), the learner is that run's at its checkpoint and the batches are
sampled from its replay: the episodes a run trains on at that point. One torch thread.
Compare two versions of the package by running this script under each, alternating. Prints a
table, then one JSON line.

    python scripts/bench_update.py --algo qmix --env lbf:8x8-2p-3f --lengths 20 50
    python scripts/bench_update.py --algo qmix --env smac:2s3z --lengths 20 60 use_rnn=true
    python scripts/bench_update.py --run runs/qmix_lbf-10x10-3p-3f_seed4
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from marl.config import load_config
from marl.replay import EpisodeBatch, EpisodeReplay
from marl.train import build_env, build_learner, load_run


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


def saved_run(run: str, batches: int, gen: torch.Generator):
    """The learner of ``run`` at its checkpoint and ``batches`` batches from its replay."""
    cfg, payload, file = load_run(run)
    if payload.get("replay") is None:
        raise SystemExit(f"{file} holds no replay (saved with save_replay=false, or not a "
                         "replay learner's run): nothing to sample batches from")
    env = build_env(cfg, 1, torch.device("cpu"))
    learner = build_learner(cfg, env.spec, torch.device("cpu"))
    learner.load_state_dict(payload["learner"])
    replay = EpisodeReplay(learner.replay_fields(), payload["replay"]["size"],
                           env.spec.episode_limit)
    replay.load_state_dict(payload["replay"])
    return cfg, learner, [replay.sample(cfg.replay.batch_size, gen) for _ in range(batches)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="qmix", choices=("iql", "vdn", "qmix"))
    parser.add_argument("--env", default="lbf:8x8-2p-3f")
    parser.add_argument("--lengths", type=int, nargs=2, default=[20, 50], metavar=("LOW", "HIGH"))
    parser.add_argument("--run", help="a saved run whose learner and replay to use instead")
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    low, high = args.lengths
    if not 1 <= low <= high:
        parser.error(f"--lengths {low} {high}: expected 1 <= LOW <= HIGH")
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    if args.run:
        cfg, learner, batches = saved_run(args.run, 20, gen)
        algo, env_name = cfg.algo, cfg.env
    else:
        cfg = load_config(args.algo, args.env, overrides=tuple(args.overrides))
        env = build_env(cfg, 1, torch.device("cpu"))
        learner = build_learner(cfg, env.spec, torch.device("cpu"))
        batches = [random_batch(learner, env.spec, cfg.replay.batch_size, low, high, gen)]
        algo, env_name = args.algo, args.env
    real = sum(int(b["filled"].sum()) for b in batches)
    fill = real / sum(b["filled"].numel() for b in batches)  # real steps of the padded batch
    mean_length = real / sum(b.size for b in batches)
    for i in range(10):  # warm up
        learner.update(batches[i % len(batches)])
    start = time.perf_counter()
    for i in range(args.updates):
        learner.update(batches[i % len(batches)])
    ms = (time.perf_counter() - start) / args.updates * 1e3
    lengths = "replay" if args.run else f"{low}-{high}"
    print(f"{'algo':<6} {'env':<24} {'lengths':<8} {'mean':>6} {'fill':>6} {'ms/update':>10}")
    print(f"{algo:<6} {env_name:<24} {lengths:<8} {mean_length:>6.1f} {fill:>6.2f} {ms:>10.2f}")
    print(json.dumps({"bench": "update", "algo": algo, "env": env_name,
                      "lengths": lengths if args.run else [low, high],
                      "mean_length": round(mean_length, 2), "fill": round(fill, 3),
                      "overrides": args.overrides, "updates": args.updates,
                      "ms_per_update": round(ms, 3)}))


if __name__ == "__main__":
    main()
