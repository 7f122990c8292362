"""What a trained SMAC policy does: its greedy actions and the battles' outcome.

Plays ``--battles`` greedy battles of a checkpoint (a file or a run folder, as ``marl eval``
takes) at once and counts every living agent's actions: the share of stop, of each move and
of each attack target (enemies named by type and index) and, on a map with a Medivac, of each
ally it heals; then the enemies killed, the allies lost, the length and the win rate per battle.
Prints a table, then one JSON line.

    python scripts/smac_policy_stats.py --checkpoint runs/smac/qmix_smac-MMM2_seed1 --battles 32
"""

from __future__ import annotations

import argparse
import json

import torch

from marl.envs.smac.env import ACTION_NAMES_BASE
from marl.train import load_policy


def action_names(env, heals: bool) -> list[str]:
    """The map's actions by name: the base ones, ``target <unit> <j>`` for each enemy, then,
    with ``heals`` (a map with a Medivac, whose ``target`` actions heal allies),
    ``heal <unit> <j>`` for each ally."""
    enemies = [unit.name for unit in env.scenario.enemy_units]
    allies = [unit.name for unit in env.scenario.ally_units] if heals else []
    return (list(ACTION_NAMES_BASE) + [f"target {name} {j}" for j, name in enumerate(enemies)]
            + [f"heal {name} {j}" for j, name in enumerate(allies)])


def play(checkpoint: str, battles: int, seed: int) -> dict:
    cfg, env, learner = load_policy(checkpoint, battles)
    if not cfg.env.startswith("smac:"):
        raise SystemExit(f"{checkpoint} is a run on {cfg.env}: this script reads SMAC maps")
    env.autoreset = False
    obs = env.reset(seed=seed)
    memory = learner.initial_memory(battles)
    n = env.n_agents
    healer = env.columns(env.state).healer.expand(battles, -1)[:, :n]
    heals = bool(healer.any())
    base = len(ACTION_NAMES_BASE)
    targets = env.spec.n_actions - base
    # a healer's target j counts as "heal j"
    counts = torch.zeros(env.spec.n_actions + (n if heals else 0))
    active = torch.ones(battles, dtype=torch.bool)
    won = torch.zeros(battles, dtype=torch.bool)
    length = torch.zeros(battles)
    for _ in range(env.spec.episode_limit):
        actions, memory, _ = learner.act(obs, memory, explore=False)
        acting = active[:, None] & (env.state.health[:, :n] > 0)
        heal = healer & (actions >= base)
        index = torch.where(heal, actions + targets, actions)
        counts += torch.bincount(index[acting], minlength=counts.numel()).float()
        step = env.step(actions)
        won |= step.info["won"] & active
        length += active.float()
        active &= ~step.done
        obs = step.obs
        if not active.any():
            break
    dead = env.state.health <= 0
    names = action_names(env, heals)
    return {"env": cfg.env, "battles": battles, "seed": seed,
            "win_rate": won.float().mean().item(),
            "enemies_killed": dead[:, n:].float().sum(1).mean().item(),
            "enemies": env.n_units - n,
            "allies_lost": dead[:, :n].float().sum(1).mean().item(), "allies": n,
            "length": length.mean().item(),
            "action_share": dict(zip(names, (counts / counts.sum()).tolist(), strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    parser.add_argument("--battles", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = play(args.checkpoint, args.battles, args.seed)
    print(f"{out['env']}, {out['battles']} greedy battles: win rate {out['win_rate']:.3f}, "
          f"enemies killed {out['enemies_killed']:.2f} of {out['enemies']}, allies lost "
          f"{out['allies_lost']:.2f} of {out['allies']}, length {out['length']:.1f}")
    print(f"{'action':<22} {'share':>6}")
    for name, share in out["action_share"].items():
        print(f"{name:<22} {share:>6.3f}")
    print(json.dumps({"bench": "smac_policy_stats", **out}))


if __name__ == "__main__":
    main()
