"""Crafter learning report: achievement success rates and Crafter's score of trained runs beside
a random policy measured the same way.

Reads the runs ``scripts/learning_curves.py`` wrote (one folder per seed under each
``--runs`` folder, e.g. one folder per observation type) and takes, per run, the last greedy
test (``test/score``, ``test/success_<a>``: ``test_episodes`` episodes) and the last training
window (``train/...``: the stochastic policy's finished episodes). The random policy draws
uniformly among each player's *available* actions (the learners' own mask) and is measured by
``marl.runner.evaluate`` on the same environment and settings as the runs' tests (their
``config.yaml``: env, env_args, episodes), ``--random-seeds`` times.

    python scripts/learning_curves.py --algos ippo --envs crafter:2p --seeds 1 2 3 \\
        --steps 1000000 --num-envs 8 --test-interval 250000 --jobs 1 \\
        --runs-dir runs/crafter-symbolic env_args.obs_type=symbolic rollout_steps=128 \\
        test_episodes=32
    python scripts/report_crafter.py --runs runs/crafter-symbolic runs/crafter-rgb
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch
import yaml

from marl import envs
from marl.envs.crafter.rules import crafter_score
from marl.runner import evaluate
from marl.spec import Obs
from marl.sweep import scalar_curve

SHOWN = ("collect_wood", "place_table", "make_wood_pickaxe", "collect_stone")
COLUMNS = ("score", "team_score", *(f"success_{a}" for a in SHOWN))


class UniformAvailable:
    """A random policy: each player draws uniformly among its available actions."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def initial_memory(self, batch: int) -> None:
        return None

    def reset_memory(self, memory: None, done: torch.Tensor) -> None:
        return None

    def act(self, obs: Obs, memory: None, *, explore: bool,
            t_env: int = 0) -> tuple[torch.Tensor, None, dict[str, torch.Tensor]]:
        weights = obs.avail.float().flatten(0, 1)
        actions = torch.multinomial(weights, 1, generator=self.generator)
        return actions.view(obs.avail.shape[:2]), None, {}

    def seed_test(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def exploration(self, t_env: int) -> dict[str, float]:
        return {}

    def summary(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def last(run: Path, tag: str) -> tuple[int, float] | None:
    curve = scalar_curve(run, tag)
    return curve[-1] if curve else None


def read_run(run: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"run": run.name}
    for group in ("test", "train"):
        step_value = last(run, f"{group}/score")
        out[f"{group}_step"] = step_value[0] if step_value else None
        for column in COLUMNS:
            value = last(run, f"{group}/{column}")
            out[f"{group}_{column}"] = None if value is None else value[1]
    return out


def random_policy(config: dict[str, Any], seeds: int) -> list[dict[str, float]]:
    rows = []
    for seed in range(seeds):
        env = envs.make(config["env"], num_envs=config["num_envs"], validate=False,
                        **config.get("env_args", {}))
        figures = evaluate(env, UniformAvailable(seed), config["test_episodes"], seed=seed)
        env.close()
        means = {k[len("episode_"):]: float(v.float().mean()) for k, v in figures.items()
                 if k.startswith("episode_")}
        rows.append({**{c: means.get(c) for c in COLUMNS if c.startswith("success_")},
                     **crafter_score(means)})
    return rows


def mean_sd(values: list[float | None]) -> str:
    xs = [v for v in values if v is not None]
    if not xs:
        return "n/a"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.2f} ± {sd:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="folders of seed runs")
    parser.add_argument("--random-seeds", type=int, default=3)
    args = parser.parse_args()
    report: dict[str, Any] = {"bench": "report_crafter", "groups": {}}
    for folder in map(Path, args.runs):
        runs = sorted(p for p in folder.iterdir() if (p / "config.yaml").exists())
        if not runs:
            raise SystemExit(f"{folder}: no runs (folders with a config.yaml)")
        config = yaml.safe_load((runs[0] / "config.yaml").read_text())
        rows = [read_run(r) for r in runs]
        randoms = random_policy(config, args.random_seeds)
        report["groups"][folder.name] = {"config": {k: config.get(k) for k in (
            "env", "env_args", "algo", "steps", "num_envs", "test_episodes")},
            "runs": rows, "random": randoms}
        steps = sorted({r["test_step"] for r in rows if r["test_step"] is not None})
        print(f"\n{folder.name}: {config['algo']} on {config['env']} {config.get('env_args')}, "
              f"{len(rows)} seeds, last test at {steps} env steps; success rates in %, "
              "mean ± sd over seeds")
        print(f"{'':<22}" + "".join(f"{c.replace('success_', ''):>20}" for c in COLUMNS))
        for label, key in (("greedy test", "test"), ("training episodes", "train")):
            print(f"{label:<22}" + "".join(
                f"{mean_sd([_pct(r[f'{key}_{c}'], c) for r in rows]):>20}" for c in COLUMNS))
        print(f"{'random (available)':<22}" + "".join(
            f"{mean_sd([_pct(r.get(c), c) for r in randoms]):>20}" for c in COLUMNS))
    print(json.dumps(report))


def _pct(value: float | None, column: str) -> float | None:
    """Success rates in %, as the score is."""
    if value is None or column.endswith("score"):
        return value
    return 100.0 * value


if __name__ == "__main__":
    main()
