"""Multi-agent Crafter (``crafter:<N>p``) beside ``crafter.Env``: speed, reset cost, achievements.

Three parts, in one run, each printing a table; then one JSON line with every figure.

1. **Steps/s** of ``marl.envs.make("crafter:<N>p", num_envs=B, obs_type=…)`` (the adapter,
   ``validate=False`` as a trainer runs it) with random *available* actions drawn from the mask,
   for every players × obs type × copies cell. An env step is one step of every copy (B env
   steps per batched call); player-steps count every player slot of every copy (N × B).
   Finished copies reset inside ``step``, so a window includes the resets that fall in it (the
   ``ends`` column); random episodes last a few hundred steps, so short windows at many copies
   see few of them (part 2 gives what one costs). Each cell is measured ``--rounds`` times,
   alternating with ``crafter.Env`` (one player, one copy, a plain loop of uniformly random
   actions, reset when done) in the same process, and is compared with the median of the
   reference windows measured next to it.
2. **Seconds per reset()** of ``crafter:2p`` (one world, through ``parallel_env``) and of
   ``crafter.Env``, in child processes that alternate: normally (opensimplex compiles its noise
   with numba when numba is installed) and with ``NUMBA_DISABLE_JIT=1`` (plain Python: what
   users without numba get). The first reset of each env in a child (JIT compile or cache load,
   textures) is left out and shown apart.
3. **Achievements of a random policy**: ``crafter:4p`` (team: an achievement counts when any
   player unlocked it in the episode; per player: the success rate averaged over the players)
   beside ``crafter.Env``, over ``--episodes`` episodes each, with the same world seeds (both
   seed episode k's world as ``hash((seed, k))``). The success rate of each of the 22
   achievements is the fraction of episodes in which it was unlocked; the Crafter score is
   ``exp(mean(log(1 + s_i))) - 1`` with ``s_i`` in percent (Hafner, 2021). ``--policy
   uniform`` (default): every player draws from Crafter's 17 actions uniformly, as the paper's
   random agent (so the per-player row is comparable with crafter.Env); ``masked``: the
   ``crafter:4p`` players draw from their available actions among all 23 (give included).
   The multi-player episodes use symbolic views (the rules do not depend on the view; at
   night the rgb view draws from the world's generator, so the exact worlds would differ).

    python scripts/bench_crafter.py                                    # all three, ~4 minutes
    python scripts/bench_crafter.py --seconds 2 --episodes 2 --length 1000
    python scripts/bench_crafter.py --parts speed --workers subprocess --copies 8 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np
import torch

from marl.envs.crafter.rules import ACHIEVEMENTS
from marl.envs.crafter.rules import crafter_score as score_of

PARTS = ("speed", "reset", "table")
OBS_TYPES = ("symbolic", "rgb")


def _crafter() -> Any:
    try:
        import crafter
    except ImportError:
        sys.exit("bench_crafter needs the crafter package: pip install 'marl-suite[crafter]'")
    return crafter


# --- 1. steps per second ------------------------------------------------------------------
def _timed(step: Callable[[], int], seconds: float) -> tuple[float, int, int]:
    """(calls of ``step`` per second over about ``seconds``, calls, episode ends reported)."""
    calls, ends, start = 0, 0, time.perf_counter()
    while True:
        ends += step()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed, calls, ends


def crafter_stepper(area: int, seed: int = 0) -> Callable[[], int]:
    """One step of ``crafter.Env`` with a uniformly random action (resets when done); returns
    1 when an episode ended."""
    crafter = _crafter()
    env = crafter.Env(area=(area, area), seed=seed)
    env.reset()
    actions = np.random.default_rng(seed).integers(len(crafter.constants.actions), size=4096)
    count = [0]

    def step() -> int:
        count[0] += 1
        _, _, done, _ = env.step(int(actions[count[0] % len(actions)]))
        if done:
            env.reset()
        return int(done)

    return step


def batched_stepper(env: Any, seed: int = 0) -> Callable[[], int]:
    """One batched step of ``env`` with random available actions; returns the episode ends."""
    obs = env.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    noise = [torch.rand(obs.avail.shape, generator=gen) for _ in range(8)]
    state = {"obs": obs, "i": 0}

    def step() -> int:
        state["i"] += 1
        avail = state["obs"].avail
        out = env.step(noise[state["i"] % 8].masked_fill(~avail, -1.0).argmax(-1))
        state["obs"] = out.obs
        return int(out.done.sum())

    return step


def speed(players: list[int], copies: list[int], obs_types: list[str], workers: str,
          area: int, seconds: float, rounds: int) -> dict:
    """Part 1: every cell alternated with crafter.Env ``rounds`` times; prints the table."""
    from marl.envs import make

    reference = crafter_stepper(area)
    for _ in range(20):  # warm up
        reference()
    rows, all_ref = [], []
    for n in players:
        for obs_type in obs_types:
            for b in copies:
                start = time.perf_counter()
                env = make(f"crafter:{n}p", num_envs=b, obs_type=obs_type, area=area,
                           workers=workers, validate=False)
                try:
                    step = batched_stepper(env)
                    built = time.perf_counter() - start
                    for _ in range(2):  # warm up
                        step()
                    ref, cell, calls, ends = [], [], 0, 0
                    for _ in range(rounds):
                        ref.append(_timed(reference, seconds)[0])
                        rate, c, e = _timed(step, seconds)
                        cell.append(rate * b)
                        calls, ends = calls + c, ends + e
                finally:
                    env.close()
                all_ref += ref
                env_sps, ref_sps = statistics.median(cell), statistics.median(ref)
                rows.append({
                    "players": n, "obs_type": obs_type, "copies": b,
                    "env_steps_per_s": round(env_sps, 1),
                    "player_steps_per_s": round(env_sps * n, 1),
                    "crafter_env_steps_per_s": round(ref_sps, 1),
                    "player_steps_over_crafter_env": round(env_sps * n / ref_sps, 3),
                    "batched_calls": calls, "episode_ends": ends,
                    "build_and_reset_s": round(built, 2),
                })
    ref_median = statistics.median(all_ref)
    print(f"1. steps/s: crafter:<N>p through make(), {workers} workers, area {area}, "
          f"{rounds} round(s) of {seconds:g} s alternating with crafter.Env "
          f"(median over all: {ref_median:,.0f} steps/s, one player, rgb)")
    print(f"{'env':<11}{'obs':<10}{'copies':>7}{'env steps/s':>13}{'player-steps/s':>16}"
          f"{'crafter.Env':>13}{'× crafter.Env':>15}{'calls':>7}{'ends':>6}{'build s':>9}")
    for r in rows:
        print(f"{'crafter:' + str(r['players']) + 'p':<11}{r['obs_type']:<10}{r['copies']:>7}"
              f"{r['env_steps_per_s']:>13,.0f}{r['player_steps_per_s']:>16,.0f}"
              f"{r['crafter_env_steps_per_s']:>13,.0f}"
              f"{r['player_steps_over_crafter_env']:>14.2f}×{r['batched_calls']:>7}"
              f"{r['episode_ends']:>6}{r['build_and_reset_s']:>9.2f}")
    print("  (× crafter.Env: player-steps/s over the crafter.Env windows measured next to it)")
    return {"workers": workers, "area": area, "seconds": seconds, "rounds": rounds,
            "crafter_env_steps_per_s": round(ref_median, 1), "rows": rows}


# --- 2. reset time --------------------------------------------------------------------------
def reset_child(area: int, seconds: float, least: int = 3) -> dict:
    """In a child process: seconds per reset of crafter:2p and crafter.Env, alternating, after
    one untimed first reset of each."""
    from marl.envs import parallel_env

    try:
        import numba

        jit_disabled = bool(numba.config.DISABLE_JIT)  # type: ignore[attr-defined]
        version: str | None = numba.__version__
    except ImportError:  # no numba: opensimplex runs as plain Python
        jit_disabled, version = True, None
    crafter = _crafter()
    envs = {"crafter_2p": parallel_env("crafter:2p", area=area, seed=0),
            "crafter_env": crafter.Env(area=(area, area), seed=0)}
    first: dict[str, float] = {}
    times: dict[str, list[float]] = {k: [] for k in envs}
    for key, env in envs.items():
        start = time.perf_counter()
        env.reset()
        first[key] = time.perf_counter() - start
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or min(map(len, times.values())) < least:
        for key, env in envs.items():
            t = time.perf_counter()
            env.reset()
            times[key].append(time.perf_counter() - t)
    return {"jit_disabled": jit_disabled, "numba": version, "first": first, "times": times}


def _run_child(area: int, seconds: float, jit: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    if not jit:
        env["NUMBA_DISABLE_JIT"] = "1"
    cmd = [sys.executable, os.path.abspath(__file__), "--reset-child", "--area", str(area),
           "--seconds", str(seconds)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        raise RuntimeError(f"the reset child (jit={jit}) failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def resets(area: int, seconds: float, rounds: int) -> dict:
    """Part 2: children with and without numba's JIT, alternating; prints the table."""
    modes = {"jit": True, "no_jit": False}
    times: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    first: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    flags: dict[str, list[bool]] = {m: [] for m in modes}
    version = None
    for _ in range(rounds):
        for mode, use_jit in modes.items():
            child = _run_child(area, seconds, use_jit)
            flags[mode].append(child["jit_disabled"])
            version = child["numba"]
            for key, values in child["times"].items():
                times[mode].setdefault(key, []).extend(values)
                first[mode].setdefault(key, []).append(child["first"][key])
    if flags["jit"] != [False] * rounds or flags["no_jit"] != [True] * rounds:
        print(f"warning: numba.config.DISABLE_JIT in the children was {flags}")
    envs = {"crafter_2p": "crafter:2p (parallel_env)", "crafter_env": "crafter.Env"}
    out: dict[str, Any] = {"area": area, "rounds": rounds, "numba": version}
    print(f"\n2. seconds per reset() (one world of {area}×{area}), median over resets after the "
          f"first, {rounds} round(s) of child processes alternating; numba {version}")
    print(f"{'env':<28}{'numba JIT':>11}{'NUMBA_DISABLE_JIT=1':>21}{'ratio':>8}{'resets':>9}"
          f"{'first (JIT / no JIT)':>24}")
    for key, label in envs.items():
        jit, plain = (statistics.median(times[m][key]) for m in modes)
        counts = "/".join(str(len(times[m][key])) for m in modes)
        firsts = [statistics.median(first[m][key]) for m in modes]
        print(f"{label:<28}{jit:>11.4f}{plain:>21.4f}{plain / jit:>7.1f}×{counts:>9}"
              f"{f'{firsts[0]:.3f} / {firsts[1]:.3f}':>24}")
        out[key] = {"jit_s": round(jit, 5), "no_jit_s": round(plain, 5),
                    "no_jit_over_jit": round(plain / jit, 2),
                    "jit_resets": len(times["jit"][key]),
                    "no_jit_resets": len(times["no_jit"][key]),
                    "first_jit_s": round(firsts[0], 4), "first_no_jit_s": round(firsts[1], 4)}
    print("  (first: each child's first reset, left out above; crafter:2p's comes first, so it "
          "also carries loading numba's compiled noise)")
    multi, single = out["crafter_2p"], out["crafter_env"]
    print(f"  crafter:2p over crafter.Env: {multi['jit_s'] / single['jit_s']:.2f}× with JIT, "
          f"{multi['no_jit_s'] / single['no_jit_s']:.2f}× without")
    return out


# --- 3. achievements --------------------------------------------------------------------------
def crafter_score(rates: list[float]) -> float:
    """Crafter's score (in %) of the 22 success rates in [0, 1], in ``ACHIEVEMENTS`` order, as
    the trainers compute it (:func:`marl.envs.crafter.rules.crafter_score`)."""
    means = {f"success_{a}": s for a, s in zip(ACHIEVEMENTS, rates, strict=True)}
    return score_of(means)["score"]


def single_episodes(episodes: int, length: int, area: int, seed: int) -> tuple[list[set], list]:
    """Achievements unlocked and lengths of ``episodes`` crafter.Env episodes, uniform actions."""
    crafter = _crafter()
    env = crafter.Env(area=(area, area), length=length, seed=seed)
    rng = np.random.default_rng(seed)
    unlocked, lengths = [], []
    for _ in range(episodes):
        env.reset()
        done, t, info = False, 0, {}
        while not done:
            _, _, done, info = env.step(int(rng.integers(len(crafter.constants.actions))))
            t += 1
        unlocked.append({k for k, v in info["achievements"].items() if v > 0})
        lengths.append(t)
    return unlocked, lengths


def team_episodes(players: int, episodes: int, length: int, area: int, seed: int,
                  policy: str) -> tuple[list[set], list[list[set]], list[int], list[int], int]:
    """Team achievements, each player's, the episodes' lengths, the players' lifetimes (steps
    each player acted) of ``episodes`` crafter:<N>p episodes, and in how many episodes the last
    ``team_achievements`` differed from the union of the players' achievements."""
    from marl.envs import parallel_env

    n_crafter = len(_crafter().constants.actions)
    env = parallel_env(f"crafter:{players}p", obs_type="symbolic", length=length, area=area,
                       seed=seed)
    rng = np.random.default_rng(seed)
    team, each, lengths, mismatches = [], [], [], 0
    lives: list[int] = []
    for _ in range(episodes):
        _, infos = env.reset()
        own: dict[str, set] = {a: set() for a in env.possible_agents}
        last_team: set = set()
        t, life = 0, dict.fromkeys(env.possible_agents, 0)
        while env.agents:
            if policy == "uniform":
                actions = {a: int(rng.integers(n_crafter)) for a in env.agents}
            else:
                actions = {a: int(rng.choice(np.flatnonzero(infos[a]["action_mask"])))
                           for a in env.agents}
            _, _, _, _, infos = env.step(actions)
            t += 1
            for agent, info in infos.items():
                own[agent] = set(info["achievements"])
                life[agent] += 1
                last_team = set(info["team_achievements"])
        union = set().union(*own.values())
        mismatches += union != last_team
        team.append(union)
        each.append([own[a] for a in env.possible_agents])
        lengths.append(t)
        lives += life.values()
    return team, each, lengths, lives, mismatches


def achievements(players: int, episodes: int, length: int, area: int, seed: int,
                 policy: str) -> dict:
    """Part 3: the success-rate table and the Crafter scores; prints the table."""
    names = list(_crafter().constants.achievements)
    single, single_len = single_episodes(episodes, length, area, seed)
    team, each, team_len, lives, mismatches = team_episodes(players, episodes, length, area, seed,
                                                     policy)
    rates = {
        "crafter_env": [sum(name in u for u in single) / episodes for name in names],
        "team": [sum(name in u for u in team) / episodes for name in names],
        "per_player": [sum(name in u for ep in each for u in ep) / (episodes * players)
                       for name in names],
    }
    scores = {k: crafter_score(v) for k, v in rates.items()}
    print(f"\n3. success rates (%) of a random policy ({policy}), {episodes} episodes each, "
          f"length {length}, area {area}")
    head = ("crafter.Env", f"{players}p team", f"{players}p player")
    print(f"{'achievement':<22}" + "".join(f"{h:>14}" for h in head))
    for i, name in enumerate(names):
        print(f"{name:<22}" + "".join(f"{100 * rates[k][i]:>14.1f}" for k in rates))
    print(f"{'score (%)':<22}" + "".join(f"{scores[k]:>14.2f}" for k in rates))
    print(f"{'mean length':<22}{statistics.mean(single_len):>14.1f}"
          f"{statistics.mean(team_len):>14.1f}{statistics.mean(lives):>14.1f}")
    if mismatches:
        print(f"warning: in {mismatches} episode(s) the last team_achievements differed from "
              "the union of the players' achievements")
    return {"players": players, "episodes": episodes, "length": length, "area": area,
            "policy": policy, "achievements": names,
            "success_rates": {k: [round(r, 4) for r in v] for k, v in rates.items()},
            "scores": {k: round(v, 3) for k, v in scores.items()},
            "mean_length": {"crafter_env": statistics.mean(single_len),
                            "team": statistics.mean(team_len),
                            "per_player": statistics.mean(lives)},
            "team_achievements_mismatches": mismatches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--players", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--obs-types", nargs="+", choices=OBS_TYPES, default=list(OBS_TYPES))
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="time per measurement window (parts 1 and 2)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (parts 1, 2)")
    parser.add_argument("--workers", choices=("inprocess", "subprocess"), default="inprocess")
    parser.add_argument("--area", type=int, default=64, help="cells of the world's side")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per env (part 3)")
    parser.add_argument("--length", type=int, default=10000, help="episode limit (part 3)")
    parser.add_argument("--table-players", type=int, default=4, help="players (part 3)")
    parser.add_argument("--policy", choices=("uniform", "masked"), default="uniform",
                        help="random policy of the multi-player episodes (part 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reset-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reset_child:
        print(json.dumps(reset_child(args.area, args.seconds)))
        return
    if args.rounds < 1 or args.seconds <= 0 or args.episodes < 1 or args.length < 1:
        parser.error("--rounds, --episodes and --length must be at least 1, --seconds positive")
    if min(args.copies) < 1 or not all(1 <= n <= 8 for n in [*args.players,
                                                             args.table_players]):
        parser.error("--copies must be at least 1 and players in [1, 8]")
    _crafter()
    result: dict[str, Any] = {"bench": "crafter", "crafter": metadata.version("crafter"),
                              "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    start = time.perf_counter()
    if "speed" in args.parts:
        result["speed"] = speed(args.players, args.copies, args.obs_types, args.workers,
                                args.area, args.seconds, args.rounds)
    if "reset" in args.parts:
        result["reset"] = resets(args.area, args.seconds, args.rounds)
    if "table" in args.parts:
        result["table"] = achievements(args.table_players, args.episodes, args.length,
                                       args.area, args.seed, args.policy)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
