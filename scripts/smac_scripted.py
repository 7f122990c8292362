"""Win rates of two scripted policies on the SMAC maps of the built-in simulator.

A check that a map's balance is the game's, not a benchmark: the allies stand where they
spawned and shoot, never moving, so what decides the battle is the units' statistics, the
weapons and the enemy's behaviour. ``closest``: every agent attacks the closest enemy it can
shoot; ``focus``: the lowest-numbered one (all agents on the same enemy where they can). Prints
a table, then one JSON line.

    python scripts/smac_scripted.py                          # the maps of issue 18's targets
    python scripts/smac_scripted.py --maps 6h_vs_8z --battles 256
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from marl.envs import make
from marl.envs.smac.maps import N_BASE_ACTIONS

MAPS = ["3m", "2s3z", "3s_vs_5z", "5m_vs_6m", "corridor", "6h_vs_8z", "MMM2"]
STOP = 1


def scripted_actions(env, obs, policy: str) -> torch.Tensor:
    """Each living agent's attack on an enemy it can shoot (by ``policy``), else stop; the
    dead no-op. Healers heal the first ally they can."""
    n = env.n_agents
    shoot = obs.avail[..., N_BASE_ACTIONS:]
    first = shoot.float().argmax(-1)  # the first enemy it can shoot (an ally it can heal)
    if policy == "closest":
        pos = env.state.pos
        enemies = min(env.n_units - n, shoot.shape[-1])
        dist = torch.cdist(pos[:, :n], pos[:, n: n + enemies])
        closest = dist.masked_fill(~shoot[..., :enemies], math.inf).argmin(-1)
        healer = env.columns(env.state).healer[..., :n].expand_as(first)
        choice = torch.where(healer, first, closest)
    else:
        choice = first
    actions = torch.where(shoot.any(-1), choice + N_BASE_ACTIONS, STOP)
    return torch.where(obs.avail[..., 0], 0, actions)


def battles(name: str, policy: str, copies: int, seed: int) -> dict[str, float]:
    env = make(f"smac:{name}", num_envs=copies, seed=seed, validate=False)
    env.autoreset = False
    obs = env.reset(seed=seed)
    active = torch.ones(copies, dtype=torch.bool)
    won = torch.zeros(copies, dtype=torch.bool)
    length = torch.zeros(copies)
    for _ in range(env.spec.episode_limit):
        step = env.step(scripted_actions(env, obs, policy))
        won |= step.info["won"] & active
        length += active.float()
        active &= ~step.done
        obs = step.obs
        if not active.any():
            break
    return {"win_rate": won.float().mean().item(), "length": length.mean().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=MAPS)
    parser.add_argument("--policies", nargs="+", default=["closest", "focus"],
                        choices=["closest", "focus"])
    parser.add_argument("--battles", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [{"map": m, "policy": p, **battles(m, p, args.battles, args.seed)}
            for m in args.maps for p in args.policies]
    print(f"{'map':<12} {'policy':<8} {'win rate':>9} {'length':>7}")
    for r in rows:
        print(f"{r['map']:<12} {r['policy']:<8} {r['win_rate']:>9.3f} {r['length']:>7.1f}")
    print(json.dumps({"bench": "smac_scripted", "battles": args.battles, "seed": args.seed,
                      "rows": rows}))


if __name__ == "__main__":
    main()
