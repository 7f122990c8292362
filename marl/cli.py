"""The ``marl`` command line: ``envs``, ``algos``, ``train``, ``eval``, ``render``,
``sweep``, ``report``, ``llm-eval``, ``ued pretrain``."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from marl import __version__


def _envs(args: argparse.Namespace) -> int:
    from marl.envs import all_ids, families

    if args.all:
        for env_id in all_ids():
            print(env_id)
        return 0
    print("Environment families (any id matching a pattern works; `marl envs --all` lists them):")
    for prefix, family in families().items():
        names = list(family.catalogue())
        examples = ", ".join(f"{prefix}:{n}" for n in names[:2]) or "(not installed)"
        print(f"  {family.pattern:<40} {family.summary}")
        print(f"  {'':<40} {len(names)} catalogued ids, e.g. {examples}")
    return 0


def _algos(args: argparse.Namespace) -> int:
    from marl.algorithms import algorithms

    for name, algorithm in algorithms().items():
        print(f"  {name:<8} {algorithm.summary}")
    return 0


def _train_flags(args: argparse.Namespace) -> dict[str, Any]:
    flags = {"steps": args.steps, "seed": args.seed, "num_envs": args.num_envs,
             "device": args.device, "name": args.name, "runs_dir": args.runs_dir}
    if args.no_progress:
        flags["progress"] = False
    if args.teacher:
        flags["teacher"] = {"name": args.teacher}
    return flags


def _train(args: argparse.Namespace) -> int:
    from marl.config import ConfigError, load_config
    from marl.train import RunInterrupted, TrainingDiverged, print_summary, train

    flags = _train_flags(args)
    try:
        if args.resume:
            if args.config:
                raise ConfigError("--config cannot be used with --resume: a resumed run keeps "
                                  "its saved config (change what may change with flags or "
                                  "key=value)")
            flags.update(algo=args.algo, env=args.env)  # refused unless they match the run
            summary = train(None, resume=args.resume, flags=flags,  # type: ignore[arg-type]
                            overrides=tuple(args.overrides))
        else:
            if not args.algo or not args.env:
                raise ConfigError("--algo and --env are required (or --resume RUN)")
            cfg = load_config(args.algo, args.env, files=tuple(args.config), flags=flags,
                              overrides=tuple(args.overrides))
            summary = train(cfg)
    except RunInterrupted as stop:
        saved = f"checkpoint {stop.checkpoint}" if stop.checkpoint else "no new checkpoint"
        print(f"marl train: {stop}; {saved}. Continue with: marl train --resume "
              f"{stop.run_dir}", file=sys.stderr)
        return 128 + stop.signum
    except TrainingDiverged as e:
        print(f"marl train: error: {e}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0


def _policy(args: argparse.Namespace, num_envs: int) -> tuple[Any, Any, Any]:
    """Config, environment and learner (with the checkpoint's weights) for render."""
    from marl.train import load_policy

    return load_policy(args.checkpoint, num_envs, device=args.device or None)


def _eval(args: argparse.Namespace) -> int:
    from marl.config import ConfigError
    from marl.train import evaluate_checkpoint

    if args.episodes < 1:
        raise ConfigError(f"--episodes {args.episodes} is not allowed: expected >= 1")
    if args.epsilon is not None and not 0 <= args.epsilon <= 1:
        raise ConfigError(f"--epsilon {args.epsilon} is not allowed: expected a number in [0, 1]")
    cfg, (summary,) = evaluate_checkpoint(args.checkpoint, args.episodes, (args.epsilon,),
                                          seed=args.seed, device=args.device or None)
    epsilon = summary.pop("epsilon")
    lo = summary["return_mean"] - summary["return_ci95"]
    hi = summary["return_mean"] + summary["return_ci95"]
    acting = f"ε-greedy (ε {epsilon:g})" if epsilon else "greedy"
    print(f"{cfg.algo} on {cfg.env}, {args.episodes} {acting} episodes (seed {args.seed})")
    print(f"  return  mean {summary['return_mean']:.4f}  std {summary['return_std']:.4f}  "
          f"95% interval [{lo:.4f}, {hi:.4f}]")
    print(f"  episode length {summary['episode_length']:.1f}", end="")
    print(f"  win rate {summary['win_rate']:.3f}" if "win_rate" in summary else "")
    print(json.dumps({"algo": cfg.algo, "env": cfg.env, "checkpoint": str(args.checkpoint),
                      "epsilon": epsilon, **summary, "ci95_low": lo, "ci95_high": hi}))
    return 0


def _render(args: argparse.Namespace) -> int:
    from marl.config import ConfigError
    from marl.render import save_gif

    out = Path(args.out)
    if not (math.isfinite(args.fps) and args.fps > 0):
        raise ConfigError(f"--fps {args.fps} is not allowed: expected a number > 0")
    if out.suffix.lower() != ".gif":
        raise ConfigError(f"--out {out}: an episode is written as an animated GIF, so the "
                          "file name must end in .gif")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    cfg, env, learner = _policy(args, 1)
    if not hasattr(env, "render"):
        raise ConfigError(f"{cfg.env} cannot render frames (its batched form has no render())")
    holds_final = hasattr(env, "autoreset")  # can keep a finished episode's last state
    if holds_final:
        env.autoreset = False
    obs = env.reset(seed=args.seed)
    learner.seed_test(args.seed)
    memory = learner.initial_memory(1)
    try:
        frames, total = [env.render(0)], 0.0
    except ValueError as e:
        raise ConfigError(f"{cfg.env} cannot render frames: {e}") from None
    for _ in range(env.spec.episode_limit):
        actions, memory, _ = learner.act(obs, memory, explore=False)
        step = env.step(actions)
        total += float(step.reward.sum())
        done = bool(step.done.any())
        if not done or holds_final:  # else the copy has already started a new episode
            frames.append(env.render(0))
        obs = step.obs
        if done:
            break
    path = save_gif(frames, out, fps=args.fps)
    print(json.dumps({"algo": cfg.algo, "env": cfg.env, "out": str(path),
                      "frames": len(frames), "return": total}))
    return 0


def _ued_pretrain(args: argparse.Namespace) -> int:
    import dataclasses

    from marl.algos.ued.rvae import RVAEConfig, save_vae, train_vae
    from marl.envs import make

    try:
        env_args = json.loads(args.env_args)
        if not isinstance(env_args, dict):
            raise ValueError("--env-args must be a JSON object")
        space = getattr(make(args.task_space, num_envs=1, **env_args), "task_space", None)
        if space is None:
            raise ValueError(f"{args.task_space} has no task space (LBF and SMACv2 have one)")
        cfg = RVAEConfig()
        if args.steps is not None:
            cfg = dataclasses.replace(cfg, steps=args.steps)
        if args.unsorted:
            cfg = dataclasses.replace(cfg, sorted=False)
    except (ValueError, TypeError) as e:
        print(f"marl ued pretrain: error: {e}", file=sys.stderr)
        return 2
    started = time.perf_counter()

    def log(step: int, metrics: dict) -> None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        print(f"step {step}: {shown}", file=sys.stderr)

    vae, metrics = train_vae(space, cfg, args.seed, log=log)
    save_vae(args.out, vae, args.task_space, metrics)
    print(json.dumps({"task_space": args.task_space, "out": args.out, "steps": cfg.steps,
                      "wall_s": round(time.perf_counter() - started, 1), **metrics}))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from marl.config import ConfigError
    from marl.sweep import Progress, run_local
    from marl.sweep_spec import SweepSpec, load_sweep

    if args.file and "=" in args.file and not Path(args.file).exists():  # an override
        args.overrides, args.file = [args.file, *args.overrides], None
    flags = {"algos": args.algos, "envs": args.envs, "seeds": args.seeds, "steps": args.steps,
             "num_envs": args.num_envs, "retries": args.retries,
             "concurrent": args.concurrent, "configs": args.config or None,
             "overrides": args.overrides or None}
    if args.file:
        spec = load_sweep(args.file, **flags)
    else:
        if not args.algos or not args.envs:
            raise ConfigError("marl sweep needs a sweep file or --algos and --envs")
        spec = SweepSpec(**{k: v for k, v in flags.items() if v is not None})
    spec.check()
    if args.tuned_dir is not None and not spec.search:
        raise ConfigError("--tuned-dir: the sweep has no search, so no configuration to choose")
    if args.tuned_dir is not None and spec.configs:
        raise ConfigError("--tuned-dir: a tuned file holds the search's values over the "
                          "defaults; a sweep over config files would leave theirs out")
    if args.report != "":
        from marl.report import check_report_dependencies

        try:
            check_report_dependencies()
        except ImportError as e:
            print(f"marl sweep: error: {e} (or --report '' for no report)", file=sys.stderr)
            return 2
    total = len(spec.jobs()) if spec.searcher != "optuna" else spec.samples  # trials
    progress = Progress(total, spec.metric, spec.mode)
    if args.backend == "ray":
        try:
            from marl.ray_sweep import run_on_ray
        except ImportError as e:
            print(f"marl sweep: error: {e} (or --backend local)", file=sys.stderr)
            return 2
        results = run_on_ray(spec, args.runs_dir, address=args.address,
                             num_cpus=args.num_cpus, progress=progress)
    else:
        results = run_local(spec.jobs(), args.runs_dir, concurrent=spec.concurrent or 1,
                            retries=spec.retries, progress=progress)
    print(f"{'run':<48} {'status':<7} {'tries':>5} {spec.metric:>18}")
    for r in results:
        value = (r.summary or {}).get(spec.metric, "")
        print(f"{r.job.name:<48} {r.status:<7} {r.attempts:>5} {value!s:>18}")
        if r.status == "failed":
            print(f"  {r.error.strip().splitlines()[-1] if r.error.strip() else ''}")
    done = [r for r in results if r.status == "done"]
    if spec.search:
        _print_ranking(results, spec, args)
    if done and args.report != "":
        from marl.report import load_runs, write_report
        from marl.sweep_spec import config_digest

        # a search's configurations are reported apart, as "<algo> (<config_digest>)"
        fixed = len(spec.overrides)
        folders = [f"{config_digest(r.job.overrides[fixed:])}={args.runs_dir / r.job.name}"
                   if spec.search else args.runs_dir / r.job.name for r in done]
        out = write_report(load_runs(folders), args.report or args.runs_dir / "report")
        print(f"report: {out}")
    print(json.dumps({"trials": len(results), "done": len(done),
                      "failed": len(results) - len(done), "metric": spec.metric,
                      "best": progress.best and {"value": progress.best[0],
                                                 "run": progress.best[1]},
                      "runs_dir": str(args.runs_dir)}))
    return 0 if len(done) == len(results) else 1


def _print_ranking(results: list, spec: Any, args: argparse.Namespace) -> None:
    """The configurations of each algorithm × env, best first; the winners to --tuned-dir."""
    from marl.sweep_spec import config_digest
    from marl.tuning import portable_command, rank_configurations, write_tuned

    ranked = rank_configurations(results, spec.overrides, spec.metric, spec.mode)
    for (algo, env), scores in ranked.items():
        print(f"\n{algo} on {env}: configurations by mean {spec.metric} over seeds")
        for c in scores:
            values = " ".join(f"{v:.4g}" for v in c.values)
            print(f"  {c.mean:>10.4g}  [{values}]{'' if c.complete else ' (incomplete)'}  "
                  f"{config_digest(c.configuration)}  {' '.join(c.configuration)}")
    if args.tuned_dir is not None:
        command = portable_command(args.argv)
        for path in write_tuned(ranked, args.tuned_dir, spec.metric, command):
            print(f"tuned: {path}")


def _llm_eval(args: argparse.Namespace) -> int:
    from marl.llm.backends import BackendError
    from marl.llm.evaluate import run_cli

    try:
        return run_cli(args)
    except (ValueError, BackendError) as e:
        print(f"marl llm-eval: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``marl`` console script."""
    parser = argparse.ArgumentParser(prog="marl", description="Multi-agent RL suite")
    parser.add_argument("--version", action="version", version=f"marl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    envs = sub.add_parser("envs", help="list the registered environments")
    envs.add_argument("--all", action="store_true", help="print every catalogued id")
    envs.set_defaults(run=_envs)
    sub.add_parser("algos", help="list the registered algorithms").set_defaults(run=_algos)

    tr = sub.add_parser("train", help="train a learner",
                        description="Train; key=value arguments override any config key "
                        "(learner.lr=0.001, env_args.penalty=0.1; learner keys may be bare).")
    tr.add_argument("--algo", help="algorithm (marl algos lists them)")
    tr.add_argument("--env", help="environment id (marl envs lists them)")
    tr.add_argument("--steps", type=int, help="environment steps to train for")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--num-envs", type=int, help="environment copies stepped together")
    tr.add_argument("--device", help="cpu, cuda, cuda:1, ...")
    tr.add_argument("--config", action="append", default=[], help="extra YAML config file(s)")
    tr.add_argument("--name", help="run name (folder under --runs-dir)")
    tr.add_argument("--runs-dir", help="where runs are written (default runs/)")
    tr.add_argument("--resume", help="continue a run from its folder or a checkpoint file")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--teacher", choices=("dr", "plr", "accel", "paired", "clutr"),
                    help="train on a curriculum (settings: teacher.key=value)")
    tr.set_defaults(run=_train, overrides=[])

    for name, helptext in (("eval", "test returns of a checkpoint"),
                           ("render", "a test episode of a checkpoint as a GIF")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", help="override the run's device")
        if name == "eval":
            p.add_argument("--episodes", type=int, default=100)
            p.add_argument("--epsilon", type=float, default=None,
                           help="value-based learners: act ε-greedily with this ε (default: "
                           "the run's evaluation_epsilon, 0 = greedy)")
            p.set_defaults(run=_eval)
        else:
            p.add_argument("--out", default="episode.gif")
            p.add_argument("--fps", type=float, default=4.0)
            p.set_defaults(run=_render)

    ev = sub.add_parser("llm-eval", help="play language-model agents in a text environment",
                        description="Episodes of llm-smac:<map>, llm-sc2:<map> or "
                        "llm-crafter:<N>p with LLM agents behind a backend; prints and writes "
                        "(TensorBoard, JSON line) win rate, damage, kills and deaths, invalid "
                        "actions, timeouts, tokens and latency; every prompt and reply goes "
                        "to a transcript that --backend replay plays back.")
    ev.add_argument("--env", required=True, help="llm-smac:3m, llm-sc2:3m, llm-crafter:2p, ...")
    ev.add_argument("--backend", required=True, choices=("openai", "transformers", "scripted",
                                                          "random", "replay"))
    ev.add_argument("--model", help="model name (openai)")
    ev.add_argument("--base-url", help="an OpenAI-compatible server, e.g. http://HOST:8000/v1")
    ev.add_argument("--model-path", help="a local model folder (transformers)")
    ev.add_argument("--replay", help="a transcript .jsonl to play back (replay)")
    ev.add_argument("--episodes", type=int, default=32)
    ev.add_argument("--battles", type=int, default=8, help="battles played at once")
    ev.add_argument("--teams", default="unit", help="unit, type or commander (StarCraft)")
    ev.add_argument("--decision-seconds", type=float, default=1.0,
                    help="game seconds between decisions (StarCraft)")
    ev.add_argument("--max-actions", type=int, help="actions per team and decision")
    ev.add_argument("--history", type=int, default=1, help="past exchanges sent with a prompt")
    ev.add_argument("--timeout", type=float, default=15.0, help="seconds per decision")
    ev.add_argument("--max-concurrent", type=int, default=32, help="requests in flight")
    ev.add_argument("--retries", type=int, default=3)
    ev.add_argument("--backoff", type=float, default=0.5, help="first wait before a retry")
    ev.add_argument("--temperature", type=float, default=0.1)
    ev.add_argument("--max-tokens", type=int, default=512)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--logdir", help="where TensorBoard and the transcript go")
    ev.add_argument("--transcript", help="transcript path (default: LOGDIR/transcript.jsonl)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(run=_llm_eval)

    sw = sub.add_parser("sweep", help="run many trainings: algorithms × envs × seeds × search",
                        description="Run (or read back, or resume) one `marl train` per "
                        "algorithm, environment, seed and configuration of the search space, "
                        "locally or on Ray; key=value arguments are overrides of every run, "
                        "after a sweep file's own. "
                        "A sweep file (YAML) holds the same keys and more (search spaces).")
    sw.add_argument("file", nargs="?", help="a sweep file (YAML); flags override its keys")
    sw.add_argument("--algos", nargs="+")
    sw.add_argument("--envs", nargs="+")
    sw.add_argument("--seeds", type=int, nargs="+")
    sw.add_argument("--steps", type=int)
    sw.add_argument("--num-envs", type=int)
    sw.add_argument("--config", action="append", default=[], metavar="FILE",
                    help="a YAML config file for every run (repeatable; e.g. a tuned file; "
                         "{algo} in it: the run's algorithm)")
    sw.add_argument("--runs-dir", type=Path, required=True, help="where the run folders go")
    sw.add_argument("--backend", choices=("ray", "local"), default="ray",
                    help="Ray Tune (default) or subprocesses on this machine")
    sw.add_argument("--address", help="an existing Ray cluster (default: start one here)")
    sw.add_argument("--num-cpus", type=int, help="CPUs of the Ray started here (default: all)")
    sw.add_argument("--concurrent", type=int, help="trials at once")
    sw.add_argument("--retries", type=int, help="extra attempts of a failing trial")
    sw.add_argument("--report", help="where the report goes (default RUNS_DIR/report; '' for "
                    "none)")
    sw.add_argument("--tuned-dir", type=Path,
                    help="write the best configuration of each algorithm × env here as "
                    "<algo>_<env>.yaml (a file for marl train --config)")
    sw.set_defaults(run=_sweep)

    from marl import report

    # argparse %-formats help strings (not descriptions): the "95%" must be escaped there
    rp = sub.add_parser("report", help=report.DESCRIPTION.replace("%", "%%"),
                        description=report.DESCRIPTION)
    report.add_arguments(rp)
    rp.set_defaults(run=report.run_cli)

    ued = sub.add_parser("ued", help="curriculum tools (task VAEs for CLUTR)")
    ued_sub = ued.add_subparsers(dest="ued_command", required=True)
    pre = ued_sub.add_parser("pretrain", help="train a task VAE on random tasks of a task space",
                             description="Train CLUTR's recurrent VAE on random tasks of an "
                             "environment's task space (no environment steps) and write it to "
                             "--out with its config and metrics (reconstruction accuracy on "
                             "held-out random tasks, legal and distinct decoded latents).")
    pre.add_argument("--task-space", required=True, help="an env id with tasks, e.g. "
                     "lbf:13x13-2p-3f or smacv2:protoss_5_vs_5")
    pre.add_argument("--out", required=True, help="the VAE file to write")
    pre.add_argument("--steps", type=int, help="training steps (default: the config's)")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--unsorted", action="store_true",
                     help="train on tasks in random order (CLUTR's ablation)")
    pre.add_argument("--env-args", default="{}", help='JSON keywords of the env, e.g. '
                     '\'{"max_walls": 40}\'')
    pre.set_defaults(run=_ued_pretrain)

    tr.usage = "marl train [options] [key=value ...]"
    sw.usage = "marl sweep [FILE] [options] [key=value ...]"
    argv = sys.argv[1:] if argv is None else list(argv)
    # key=value overrides may stand anywhere among the options, as users type them; a
    # sweep's list options (--seeds 1 2) would take them for their values: set them aside
    early = ([a for a in argv if "=" in a and not a.startswith("-")]
             if argv[:1] == ["sweep"] else [])
    args, rest = parser.parse_known_args([a for a in argv if a not in early])
    overrides = early + [a for a in rest if "=" in a and not a.startswith("-")]
    unknown = [a for a in rest if a not in overrides]
    if unknown or (overrides and args.command not in ("train", "sweep")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    args.overrides = overrides
    args.argv = argv
    from marl.checkpoint import CheckpointError
    from marl.config import ConfigError
    from marl.envs.registry import UnknownEnvId

    formatwarning = warnings.formatwarning  # warnings read as the command's own lines
    warnings.formatwarning = lambda message, *_, **__: f"marl {args.command}: warning: {message}\n"
    try:
        return args.run(args)
    except (ConfigError, CheckpointError, UnknownEnvId) as e:
        print(f"marl {args.command}: error: {e}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
