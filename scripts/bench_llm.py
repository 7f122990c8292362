"""The LLM text bridge: does the text layer lose anything, and is the harness fast enough?

Two parts, in one run, each printing a table; then one JSON line with every figure.

1. **Text vs ids** on ``llm-smac:<map>`` for ``--maps``: the focus-fire heuristic written as
   text (:func:`marl.llm.scripted.focus_fire_reply`, read off the observation text, parsed back
   into orders) beside the same heuristic giving orders directly from the battle's state
   (:func:`marl.llm.smac_text.focus_fire_actions`), and a random text policy; ``--episodes``
   episodes each in waves of ``--battles`` battles, the same seeds for all three, one decision
   per game second, one agent per unit. Win rate, damage dealt and kill/death ratio against the
   simulator's built-in AI.
2. **Harness throughput**: agents' decisions (queries) per wall-clock second on
   ``llm-smac:<--throughput-map>`` at ``--concurrent`` battles at once, through a local
   chat-completions server that answers at once with the scripted reply (in a child process,
   so that it does not share this process's interpreter lock), beside the same loop calling the
   scripted policy in-process (no HTTP: the bridge alone). The server's share is the difference.

    python scripts/bench_llm.py                       # ~3 minutes
    python scripts/bench_llm.py --episodes 16 --concurrent 1 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from typing import Any

from marl import llm
from marl.llm.backends import FunctionBackend, OpenAIBackend, Request
from marl.llm.evaluate import evaluate
from marl.llm.query import QueryLimits
from marl.llm.scripted import focus_fire_reply, random_reply
from marl.llm.smac_text import focus_fire_actions


def compare(maps: list[str], episodes: int, battles: int, seed: int) -> dict[str, Any]:
    print(f"\n1. focus fire as text vs on action ids, {episodes} episodes per cell")
    print(f"{'map':<10} {'policy':<8} {'win rate':>9} {'damage':>8} {'K/D':>6} "
          f"{'invalid':>8}")
    out: dict[str, Any] = {}
    for name in maps:
        env = llm.make(f"llm-smac:{name}", battles, seed=seed)
        backends = {"text": FunctionBackend(focus_fire_reply), "ids": None,
                    "random": FunctionBackend(random_reply)}
        out[name] = {}
        for policy, backend in backends.items():
            direct = focus_fire_actions if backend is None else None
            s = evaluate(env, backend, direct=direct, episodes=episodes, seed=seed)["summary"]
            out[name][policy] = {k: s[k] for k in ("win_rate", "damage_dealt_mean",
                                                   "kill_death_ratio", "invalid_action_rate")}
            print(f"{name:<10} {policy:<8} {s['win_rate']:>9.3f} {s['damage_dealt_mean']:>8.1f} "
                  f"{s['kill_death_ratio']:>6.2f} {s['invalid_action_rate']:>8.3f}")
    return out


def _serve(conn: Any) -> None:
    """A chat server answering every request with the scripted reply, until told to stop."""
    from marl.llm.chat_server import ChatServer, Response

    def answer(body: dict) -> Response:
        return Response(focus_fire_reply(Request("server", body["messages"])))

    with ChatServer(answer, model="scripted") as server:
        conn.send(server.base_url)
        conn.recv()


def throughput(name: str, concurrent: list[int], episodes: int, seed: int,
               rounds: int) -> dict[str, Any]:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    base_url = parent.recv()
    limits = QueryLimits(timeout_s=60.0, max_concurrent=1024)
    print(f"\n2. decisions/s on llm-smac:{name}, server answering at once vs in-process "
          f"(median of {rounds} alternating rounds)")
    print(f"{'battles':>8} {'server':>10} {'bridge':>10} {'server p50 ms':>14}")
    out: dict[str, Any] = {}
    try:
        for battles in concurrent:
            env = llm.make(f"llm-smac:{name}", battles, seed=seed)
            n = max(episodes, battles)
            rates: dict[str, list[float]] = {"server": [], "bridge": []}
            p50 = []
            for _ in range(rounds):
                for kind in ("server", "bridge"):
                    backend = (OpenAIBackend("scripted", base_url) if kind == "server"
                               else FunctionBackend(focus_fire_reply))
                    s = evaluate(env, backend, episodes=n, seed=seed, limits=limits)["summary"]
                    rates[kind].append(s["decisions_per_s"])
                    if kind == "server":
                        p50.append(s["latency_p50"])
            med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
            latency = sorted(p50)[len(p50) // 2]
            out[str(battles)] = {"server_decisions_per_s": med["server"],
                                 "bridge_decisions_per_s": med["bridge"],
                                 "server_latency_p50_s": latency, "episodes": n}
            print(f"{battles:>8} {med['server']:>10.0f} {med['bridge']:>10.0f} "
                  f"{1000 * latency:>14.1f}")
    finally:
        parent.send("stop")
        server.join(timeout=10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=["3m", "2s3z", "3s_vs_5z", "MMM"])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--battles", type=int, default=16)
    parser.add_argument("--throughput-map", default="3m")
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--throughput-episodes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    result = {"bench": "llm", "compare": compare(args.maps, args.episodes, args.battles,
                                                 args.seed),
              "throughput": throughput(args.throughput_map, args.concurrent,
                                       args.throughput_episodes, args.seed, args.rounds)}
    result["wall_s"] = time.perf_counter() - started
    print(json.dumps(result))


if __name__ == "__main__":
    main()
