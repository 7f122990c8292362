"""How fast this machine runs the GRU of an EPyMARL-style actor, and the ceiling that puts on
MAPPO's env steps per second.

A MAPPO update with a GRU actor runs, every epoch, the GRU forward and backward over the
whole rollout (``steps`` × ``copies`` × ``agents`` sequences of width ``hidden``), one step at
a time because episodes begin anywhere in a rollout (``AgentNet.unroll``). This script times
that, beside the same maths as one full-sequence call (no resets: the best case) and a plain
matrix product of the GRU's shape (what the core does at best), and prints the env steps per
second the actor's GRU alone allows: ``1 / (epochs · t_unroll + t_rollout) · steps · copies``,
where ``t_rollout`` is the GRU's forward during collection. Everything else a run does (the
critic, the environment, the optimiser) comes on top, so a run is slower than the ceiling.

It also times the GRU of a Q-learner's update: ``--episodes`` whole episodes of lengths drawn
from ``--lengths LOW HIGH`` (one of them ``HIGH``: a batch is as long as its longest), through
``AgentNet.sequence`` with their lengths (on a CPU, only the real steps when they are at most
75% of the batch) and through ``nn.GRU`` over the padded batch, alternating.

    python scripts/bench_gru.py                       # EPyMARL's MAPPO: GRU 128, 2 agents
    python scripts/bench_gru.py --copies 256 --hidden 64 --agents 3
    python scripts/bench_gru.py --hidden 64 --lengths 3 28   # a replay of short episodes
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from marl.nets import AgentNet


def best_time(fn, rounds: int) -> float:
    """The fastest of ``rounds`` calls (the least disturbed by other processes), seconds."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--copies", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="rollout length (LBF: 50)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--obs", type=int, default=15, help="observation width (LBF 8x8-2p-3f)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=32, help="a Q-learner's batch")
    parser.add_argument("--lengths", type=int, nargs=2, default=[5, 51], metavar=("LOW", "HIGH"),
                        help="its episodes' lengths in steps")
    args = parser.parse_args()
    if not 1 <= args.lengths[0] <= args.lengths[1]:
        parser.error(f"--lengths {args.lengths[0]} {args.lengths[1]}: expected 1 <= LOW <= HIGH")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    h, t, b, n = args.hidden, args.steps, args.copies, args.agents
    net = AgentNet(args.obs + n, 6, n, hidden_dim=h, rnn=True, shared=True)  # LBF: 6 actions
    x = torch.randn(t, b, n, args.obs + n)  # with the agent id, as the actor sees it
    memory = torch.zeros(b, n, h)
    starts = torch.rand(t, b, generator=torch.Generator().manual_seed(0)) < 1 / t

    def unroll() -> None:
        net.zero_grad()
        net.unroll(x, memory, starts).square().mean().backward()

    z = torch.randn(t, b * n, h)

    def full_sequence() -> None:
        net.zero_grad()
        out, _ = net.core(z)
        out.square().mean().backward()

    def rollout() -> None:
        with torch.no_grad():
            mem = memory
            for i in range(t):
                _, mem = net(x[i], mem)

    low, high = args.lengths
    lengths = torch.randint(low, high + 1, (args.episodes,),
                            generator=torch.Generator().manual_seed(1))
    lengths[0] = high
    episodes = torch.randn(args.episodes, high, n, args.obs + n)
    real = (torch.arange(high) < lengths[:, None])[..., None, None]
    real_share = float(lengths.sum()) / (args.episodes * high)

    def padded_episodes() -> None:  # the maths of sequence() without lengths, then masked
        net.zero_grad()
        z = torch.relu(net.fc_in(episodes)).transpose(0, 1).flatten(1, 2)
        out, _ = net.core(z)
        q = net.fc_out(out.unflatten(1, (args.episodes, n)).transpose(0, 1))
        (q * real).square().mean().backward()

    def episodes_with_lengths() -> None:
        net.zero_grad()
        net.sequence(episodes, lengths).square().mean().backward()

    t_padded, t_lengths = [], []
    for _ in range(2):  # alternating
        t_padded.append(best_time(padded_episodes, args.rounds))
        t_lengths.append(best_time(episodes_with_lengths, args.rounds))
    t_padded_best, t_lengths_best = min(t_padded), min(t_lengths)

    a, w = torch.randn(b * n, h), torch.randn(h, 3 * h)
    matmuls = 50
    t_mm = best_time(lambda: [a @ w for _ in range(matmuls)], args.rounds) / matmuls
    t_unroll = best_time(unroll, args.rounds)
    t_full = best_time(full_sequence, args.rounds)
    t_rollout = best_time(rollout, args.rounds)
    # the GRU's two products (input and hidden, h → 3h each) forward, twice that backward
    gru_flops = t * b * n * 2 * (2 * h * 3 * h) * 3
    env_steps = t * b
    ceiling = env_steps / (args.epochs * t_unroll + t_rollout)
    rows = [
        ("matrix product [B·N, H] @ [H, 3H]", t_mm * 1e3, 2 * b * n * h * 3 * h / t_mm / 1e9),
        ("GRU unroll, forward + backward", t_unroll * 1e3, gru_flops / t_unroll / 1e9),
        ("GRU full sequence, forward + backward", t_full * 1e3, gru_flops / t_full / 1e9),
        ("GRU forward while collecting", t_rollout * 1e3, gru_flops / 3 / t_rollout / 1e9),
    ]
    print(f"GRU {h}, {n} agents, {b} copies, {t} steps, {args.epochs} epochs, one thread")
    print(f"{'what':<40}{'ms':>10}{'GFLOP/s':>10}")
    for name, ms, gflops in rows:
        print(f"{name:<40}{ms:>10.2f}{gflops:>10.1f}")
    print(f"ceiling from the actor's GRU alone: {ceiling:,.0f} env steps/s")
    print(f"\na Q-learner's batch: {args.episodes} episodes of {low}-{high} steps, "
          f"{real_share:.0%} of the padded batch real; forward + backward")
    print(f"{'nn.GRU over the padding':<40}{t_padded_best * 1e3:>10.2f}")
    print(f"{'AgentNet.sequence with lengths':<40}{t_lengths_best * 1e3:>10.2f}"
          f"{t_padded_best / t_lengths_best:>9.2f}x")
    print(json.dumps({"bench": "gru", "hidden": h, "agents": n, "copies": b, "steps": t,
                      "epochs": args.epochs, "matmul_gflops": rows[0][2],
                      "unroll_ms": t_unroll * 1e3, "full_sequence_ms": t_full * 1e3,
                      "rollout_ms": t_rollout * 1e3, "unroll_gflops": rows[1][2],
                      "env_steps_per_s_ceiling": ceiling, "episodes": args.episodes,
                      "lengths": [low, high], "real_share": round(real_share, 3),
                      "episodes_padded_ms": t_padded_best * 1e3,
                      "episodes_with_lengths_ms": t_lengths_best * 1e3,
                      "episodes_speedup": t_padded_best / t_lengths_best}))


if __name__ == "__main__":
    main()
