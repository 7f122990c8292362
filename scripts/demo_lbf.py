"""The LBF demo: play one episode, save it as a GIF, and print the speed table.

python scripts/demo_lbf.py [--out lbf_demo.gif] [--seconds 1]
"""

from __future__ import annotations

import argparse
import json

import torch
from bench_envs import run

from marl.envs import make
from marl.render import save_gif


def play(env_id: str, out: str, seed: int) -> tuple[int, float]:
    """One episode with random available actions (preferring LOAD); returns length, return."""
    env = make(env_id, num_envs=1, seed=seed)
    obs = env.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    frames, total, length = [env.render()], 0.0, 0
    while length < env.spec.episode_limit:
        length += 1
        scores = torch.rand(obs.avail.shape, generator=gen) + 2.0 * obs.avail[..., 5:6]
        step = env.step(scores.masked_fill(~obs.avail, -1.0).argmax(-1))
        total += step.reward.sum().item()
        if step.done.any():
            break
        frames.append(env.render())
        obs = step.obs
    save_gif(frames, out, fps=4)
    return length, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="lbf:8x8-2p-3f")
    parser.add_argument("--out", default="lbf_demo.gif")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per speed measurement")
    args = parser.parse_args()
    length, team_return = play(args.env, args.out, args.seed)
    print(f"{args.env}: one episode of {length} steps, team return {team_return:.3f} -> {args.out}")
    print(json.dumps(run(["8x8-2p-3f"], [1, 64, 1024, 4096], "cpu", args.seconds)))


if __name__ == "__main__":
    main()
