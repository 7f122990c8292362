"""Evaluating LLM agents: episodes of a text environment played through a backend.

Episodes run in waves of ``battles`` battles (each battle's first episode after a reset, the
reset of wave ``w`` seeded ``seed + w``, as :func:`marl.runner.evaluate`). Every decision, the
live agents of every running battle are asked at once (:func:`marl.llm.query.query_all`:
concurrency, timeouts, retries); a late or failed answer is a no-op (the agent's orders stand)
and is counted. Every prompt and reply goes to the transcript, which
:class:`~marl.llm.backends.ReplayBackend` plays back exactly.

Figures (:func:`summarise`): ``win_rate``; per episode means of ``return``, ``damage_dealt``,
``damage_taken``, ``kills``, ``deaths`` and of any ``episode_*`` figure the environment reports
(Crafter's achievements, with its ``score``); ``kill_death_ratio`` (kills over deaths, summed
over episodes); ``invalid_action_rate`` (rejected actions and parser errors over everything
the agents wrote: actions plus parser errors); ``timeouts``, ``failures`` and their rates per
query (one agent's decision); ``tokens_in``/``tokens_out`` (totals and per query);
``latency_p50/p90/p99`` (seconds per answered query); ``queries``, ``decisions`` (per battle)
and ``decisions_per_s`` (queries, or decisions without a backend, per wall-clock second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from marl.llm.agents import CRAFTER_SYSTEM_PROMPT, SMAC_SYSTEM_PROMPT, LLMAgent
from marl.llm.backends import Backend, Reply, TranscriptWriter
from marl.llm.query import QueryLimits, query_all
from marl.llm.text_env import TextBattles

OUTCOME = ("damage_dealt", "damage_taken", "kills", "deaths")


def system_prompt(battles: TextBattles, agent: str) -> str:
    """The default system prompt of ``agent`` (StarCraft or Crafter)."""
    teams = getattr(battles, "teams", {}).get(agent, ())
    names = ", ".join(getattr(t, "name", t) for t in teams)
    template = CRAFTER_SYSTEM_PROMPT if hasattr(battles, "worlds") else SMAC_SYSTEM_PROMPT
    return template.format(agent=agent, teams=names)


async def play(battles: TextBattles, backend: Backend | None, *, episodes: int, seed: int = 0,
               limits: QueryLimits | None = None, history: int = 1,
               transcript: TranscriptWriter | None = None, progress: bool = False,
               direct: Callable[[TextBattles], None] | None = None) -> list[dict[str, Any]]:
    """Play ``episodes`` episodes; one record per episode. ``direct`` (instead of a backend)
    gives orders without text each decision (the id-level baselines)."""
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes={episodes!r}: a positive integer")
    if (backend is None) == (direct is None):
        raise ValueError("play() needs a backend or a direct policy, not both")
    limits = limits or QueryLimits()
    records: list[dict[str, Any]] = []
    bar = tqdm(total=episodes, unit="episode", disable=not progress, dynamic_ncols=True)
    wave = 0
    while len(records) < episodes:
        take = min(battles.num_battles, episodes - len(records))
        first = len(records)
        obs = battles.reset(seed=seed + wave)
        agents = [{a: LLMAgent(a, system_prompt(battles, a), history=history)
                   for a in battles.agents} for _ in range(take)]
        runs = [_new_record(first + b) for b in range(take)]
        decision = 0
        started = time.perf_counter()
        while any(battles.active[:take]):
            replies: list[dict[str, str]] = [{} for _ in range(battles.num_battles)]
            if direct is not None:
                direct(battles)
            else:
                asked = [(b, a) for b in range(take) for a in battles.live_agents(b)]
                requests = [agents[b][a].request(f"ep{first + b}/{a}/d{decision}", obs[b][a])
                            for b, a in asked]
                answers = await query_all(backend, requests, limits, transcript)  # type: ignore[arg-type]
                for (b, a), answer in zip(asked, answers, strict=True):
                    _count(runs[b], answer)
                    if not (answer.timed_out or answer.error):
                        replies[b][a] = answer.text
                        agents[b][a].remember(obs[b][a], answer.text)
            was_active = battles.active
            step = battles.step(replies)
            for b in range(take):
                if not was_active[b]:
                    continue
                run = runs[b]
                run["decisions"] += 1
                run["return"] += step.reward[b]
                info = step.info[b]
                for key in OUTCOME:
                    run[key] += info.get(key, 0)
                for key in ("actions", "rejected", "parse_errors"):
                    run[key] += info.get(key, 0)
                if step.terminated[b] or step.truncated[b]:
                    run["won"] = bool(info.get("won", False))
                    run["truncated"] = bool(step.truncated[b])
                    run.update({k: float(v) for k, v in info.items()
                                if k.startswith("episode_")})
                    bar.update(1)
            obs = step.obs
            decision += 1
        for run in runs:
            run["wave"], run["wave_wall_s"] = wave, time.perf_counter() - started
        records += runs
        wave += 1
    bar.close()
    if backend is not None:
        await backend.aclose()
    return records


def _new_record(episode: int) -> dict[str, Any]:
    return {"episode": episode, "return": 0.0, "won": False, "truncated": False,
            **dict.fromkeys(OUTCOME, 0.0), "actions": 0, "rejected": 0, "parse_errors": 0,
            "decisions": 0, "queries": 0, "timeouts": 0, "failures": 0, "tokens_in": 0,
            "tokens_out": 0, "latencies": []}


def _count(run: dict[str, Any], answer: Reply) -> None:
    run["queries"] += 1
    run["timeouts"] += int(answer.timed_out)
    run["failures"] += int(bool(answer.error) and not answer.timed_out)
    run["tokens_in"] += answer.tokens_in
    run["tokens_out"] += answer.tokens_out
    if not (answer.timed_out or answer.error):
        run["latencies"].append(answer.latency_s)


def summarise(records: list[dict[str, Any]]) -> dict[str, float]:
    """The figures of the module card, from :func:`play`'s records."""
    n = len(records)

    def total(key: str) -> float:
        return float(sum(r[key] for r in records))

    queries = max(total("queries"), 1.0)
    latencies = [x for r in records for x in r["latencies"]]
    out = {"episodes": float(n), "win_rate": total("won") / n,
           "return_mean": total("return") / n,
           **{f"{k}_mean": total(k) / n for k in OUTCOME},
           "kill_death_ratio": total("kills") / max(total("deaths"), 1.0),
           "invalid_action_rate": (total("rejected") + total("parse_errors")) / max(
               total("actions") + total("parse_errors"), 1.0),
           "decisions": total("decisions"), "queries": total("queries"),
           "timeouts": total("timeouts"), "timeout_rate": total("timeouts") / queries,
           "failures": total("failures"), "failure_rate": total("failures") / queries,
           "tokens_in": total("tokens_in"), "tokens_out": total("tokens_out"),
           "tokens_in_per_query": total("tokens_in") / queries,
           "tokens_out_per_query": total("tokens_out") / queries}
    for q in (50, 90, 99):
        out[f"latency_p{q}"] = float(np.percentile(latencies, q)) if latencies else 0.0
    wall = max(sum({r["wave"]: r["wave_wall_s"] for r in records}.values()), 1e-9)
    out["wall_s"] = wall
    out["decisions_per_s"] = (total("queries") or total("decisions")) / wall
    figures = sorted({k for r in records for k in r if k.startswith("episode_")})
    means = {k[len("episode_"):]: float(np.mean([r.get(k, 0.0) for r in records]))
             for k in figures}
    out.update(means)
    if any(k.startswith("success_") for k in means):
        from marl.envs.crafter.rules import crafter_score

        out.update(crafter_score(means))
    return out


def evaluate(battles: TextBattles, backend: Backend | None, **kwargs: Any) -> dict[str, Any]:
    """:func:`play` from synchronous code; ``{"summary": ..., "episodes": [...]}``."""
    records = asyncio.run(play(battles, backend, **kwargs))
    return {"summary": summarise(records), "episodes": records}


BACKENDS = ("openai", "transformers", "scripted", "random", "replay")
SUMMARY_TAGS = {
    "win_rate": "fraction of episodes won",
    "return_mean": "mean episode return",
    "damage_dealt_mean": "mean health and shields taken off the enemies per episode",
    "damage_taken_mean": "mean health and shields lost per episode",
    "kill_death_ratio": "enemy units killed over own units lost",
    "invalid_action_rate": "rejected actions and parser errors over everything written",
    "timeout_rate": "queries answered too late, over all queries",
    "failure_rate": "queries that failed (server errors after retries), over all queries",
    "tokens_in_per_query": "prompt tokens per query",
    "tokens_out_per_query": "reply tokens per query",
    "latency_p50": "median seconds per answered query",
    "latency_p90": "90th percentile of seconds per answered query",
    "latency_p99": "99th percentile of seconds per answered query",
    "decisions_per_s": "queries answered per wall-clock second",
}


def make_backend(args: Any) -> Backend:
    """The backend a ``marl llm-eval`` command line names."""
    from marl.llm import backends, scripted

    if args.backend == "openai":
        if not args.model:
            raise ValueError("--backend openai needs --model (and --base-url for a server "
                             "other than OpenAI's; the key comes from $OPENAI_API_KEY)")
        return backends.OpenAIBackend(args.model, args.base_url, temperature=args.temperature,
                                      max_tokens=args.max_tokens)
    if args.backend == "transformers":
        if not args.model_path:
            raise ValueError("--backend transformers needs --model-path (a folder with the "
                             "model and its tokenizer)")
        return backends.TransformersBackend(args.model_path, max_new_tokens=args.max_tokens,
                                            temperature=args.temperature, seed=args.seed)
    if args.backend == "scripted":
        return backends.FunctionBackend(scripted.focus_fire_reply, name="scripted")
    if args.backend == "random":
        return backends.FunctionBackend(
            lambda request: scripted.random_reply(request, args.seed), name="random")
    if not args.replay:
        raise ValueError("--backend replay needs --replay (a transcript .jsonl)")
    return backends.ReplayBackend(args.replay)


def run_cli(args: Any) -> int:
    """``marl llm-eval``: play, print a table and one JSON line, write TensorBoard and the
    transcript into ``--logdir``."""
    import json
    import os
    from pathlib import Path

    from marl import llm
    from marl.logger import RunLogger, register_tags

    options: dict[str, Any] = {"seed": args.seed}
    if args.env.startswith(("llm-smac:", "llm-sc2:")):
        options.update(teams=args.teams, decision_seconds=args.decision_seconds,
                       max_actions=args.max_actions)
    elif args.max_actions is not None:
        options["max_actions"] = args.max_actions
    options = {k: v for k, v in options.items() if v is not None}
    battles = llm.make(args.env, args.battles, **options)
    backend = make_backend(args)
    logdir = Path(args.logdir or Path("runs") / "llm-eval" / (
        f"{args.env.replace(':', '-')}_{args.backend}_{time.strftime('%Y%m%d-%H%M%S')}"))
    if logdir.exists() and any(logdir.iterdir()):
        raise ValueError(f"--logdir {logdir} is not empty; pick a new folder")
    logdir.mkdir(parents=True, exist_ok=True)
    limits = QueryLimits(timeout_s=args.timeout, max_concurrent=args.max_concurrent,
                         retries=args.retries, backoff_s=args.backoff)
    with TranscriptWriter(args.transcript or logdir / "transcript.jsonl") as transcript:
        result = evaluate(battles, backend, episodes=args.episodes, seed=args.seed,
                          limits=limits, history=args.history, transcript=transcript,
                          progress=not args.no_progress)
    summary = result["summary"]
    register_tags({f"llm/{k}": v for k, v in SUMMARY_TAGS.items()})
    register_tags({"llm/episode_return": "return of each episode (step: episode index)",
                   "llm/episode_won": "1 when the episode was won (step: episode index)"})
    logger = RunLogger(logdir, total_steps=args.episodes, progress=False)
    for record in result["episodes"]:
        logger.log("llm", {"episode_return": record["return"],
                           "episode_won": float(record["won"])}, record["episode"])
    logger.log("llm", {k: summary[k] for k in SUMMARY_TAGS}, args.episodes)
    logger.close()
    print(f"{args.env} with {args.backend}: {args.episodes} episodes in {args.battles} "
          "battles at once")
    for key, value in summary.items():
        print(f"  {key:<24} {value:,.4g}")
    print(json.dumps({"env": args.env, "backend": args.backend, "model": args.model,
                      "logdir": os.fspath(logdir), **summary}))
    battles_env = getattr(battles, "env", None)
    if battles_env is not None:
        battles_env.close()
    return 0
