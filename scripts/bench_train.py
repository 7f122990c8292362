"""End-to-end training speed (collection + updates) on LBF, against a reference.

Runs the real training loop from scratch with EPyMARL's defaults for each algorithm (QMIX/IQL:
one update of a 32-episode batch per collected episode; IPPO/MAPPO: one PPO update per
rollout of ``episode_limit`` steps of every copy) for ``--steps`` env steps at each number of
parallel copies, and prints a table and one JSON line. Greedy tests are cut to one episode at
the start and the end so the figure is training speed. ``key=value`` items after ``--set``
override our config (e.g. ``--set use_rnn=false``; EPyMARL keeps its own). Each setting is
measured ``--rounds`` times, the reference and ours alternating within each round; the table
shows medians, the JSON line every round's steps/s too.

The reference is one of
- ``--epymarl DIR``: EPyMARL itself (a checkout, run by ``--epymarl-python``, the interpreter of
  its environment) in a subprocess, for qmix, iql and vdn on the lbforaging task matching
  ``--env`` (``lbf:8x8-2p-3f`` → ``lbforaging:Foraging-8x8-2p-3f-v3``, its ``gymma`` env with
  time limit 50), with its defaults except: ``seed``, greedy tests cut to one episode, one
  summary log line at the end, no observers, TensorBoard or model saving, and ``use_cuda``
  following our device. Its training time is taken between the lines it logs right before and
  right after its training loop ("Beginning training", "Finished Training"), stamped by this
  script as they arrive: like ours, which times ``Trainer.run()`` after the environments and
  networks are built, it leaves out interpreter start-up, imports, set-up and shut-down, which
  are reported beside it (process wall-clock minus training) but not in the ratio. EPyMARL
  runs one torch thread, as ours does on CPU;
- ``--reference-env``: the same algorithm and settings of ours on another environment —
  e.g. ``lbforaging:Foraging-8x8-2p-3f-v3`` (the lbforaging package stepped one copy at a
  time, as EPyMARL does) at ``--reference-copies`` copies (EPyMARL's 10 for PPO); or
- neither: EPyMARL figures quoted from the project's issue tracker (measured on a 2-core
  machine before EPyMARL could be installed here: QMIX about 330, IQL about 210 env steps/s;
  ``--epymarl-qmix`` / ``--epymarl-iql`` replace them). They are not measured in the run, and
  the output says so.

    python scripts/bench_train.py --algos qmix iql --copies 1 16 --steps 60000 \
        --epymarl ../epymarl --epymarl-python ../epymarl-venv/bin/python
    python scripts/bench_train.py --steps 50000 --copies 1 16
    python scripts/bench_train.py --algos mappo --copies 10 256 1024 --steps 1000000 \
        --reference-env lbforaging:Foraging-8x8-2p-3f-v3 --reference-steps 50000
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from marl.config import load_config
from marl.train import Trainer

EPYMARL_ALGOS = ("qmix", "iql", "vdn")  # episode runner + Q-learner in EPyMARL's configs
EPYMARL_BATCH = 32  # EPyMARL's batch_size: its first update comes with the 32nd episode
LBF_TIME_LIMIT = 50  # EPyMARL's time limit for LBF, and LBF's own max_episode_steps
TRAINING_STARTS = "Beginning training for"
TRAINING_ENDS = "Finished Training"
FINAL_STATS = re.compile(r"Recent Stats \| t_env:\s*(\d+) \| Episode:\s*(\d+)")
TIMED = ("wall_s", "steps_per_s", "updates_per_s", "process_s", "startup_s")
TIMING = {
    "ours": "Trainer.run() wall-clock, after the environments and networks are built",
    "epymarl": "between EPyMARL's 'Beginning training' and 'Finished Training' log lines, "
               "stamped on arrival; process_s is the whole process, startup_s the rest",
}


def measure(algo: str, env: str, steps: int, copies: int, seed: int, runs_dir: str,
            overrides: tuple[str, ...] = ()) -> dict:
    cfg = load_config(algo, env, flags=dict(
        steps=steps, num_envs=copies, seed=seed, progress=False, tensorboard=False,
        test_interval=0, test_episodes=1, save_interval=0, save_replay=False,
        runs_dir=runs_dir, name=f"{algo}-{copies}"), overrides=overrides)
    trainer = Trainer(cfg)
    start = time.perf_counter()
    summary = trainer.run()
    wall = time.perf_counter() - start
    return {"algo": algo, "impl": "ours", "copies": copies, "env_steps": summary["env_steps"],
            "episodes": summary["episodes"], "updates": summary["updates"],
            "wall_s": round(wall, 2), "steps_per_s": round(summary["env_steps"] / wall, 1),
            "updates_per_s": round(summary["updates"] / wall, 1),
            "test_return": summary["test_return_mean"]}


def lbforaging_id(env: str) -> str:
    """The lbforaging id EPyMARL's ``gymma`` runs for our LBF id: ``lbf:8x8-2p-3f`` →
    ``lbforaging:Foraging-8x8-2p-3f-v3``."""
    family, _, name = env.partition(":")
    if family != "lbf" or not name:
        raise ValueError(f"--epymarl compares LBF only: --env must be an lbf: id, got '{env}'")
    if name.startswith("grid-"):
        raise ValueError(f"'{env}': lbforaging registers its grid-observation ids only when "
                         "asked, and EPyMARL's gymma does not ask; use a vector-observation id")
    return f"lbforaging:Foraging-{name}-v3"


def check_epymarl(epymarl: Path, python: str, algos: list[str], key: str) -> None:
    """Exit with what to fix when the checkout, its interpreter or the task cannot run."""
    for algo in algos:
        if algo not in EPYMARL_ALGOS:
            sys.exit(f"--epymarl measures {', '.join(EPYMARL_ALGOS)}; got '{algo}' "
                     "(compare PPO methods with --reference-env)")
    for file in ["src/main.py", *(f"src/config/algs/{a}.yaml" for a in algos)]:
        if not (epymarl / file).is_file():
            sys.exit(f"--epymarl {epymarl}: no {file}; give the root of an EPyMARL checkout")
    # EPyMARL's src/run.py imports all it trains with (its envs, learners, runners)
    probe = f"import gymnasium, lbforaging, sacred, run; gymnasium.spec({key.split(':')[1]!r})"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True,
                              cwd=epymarl / "src")
    except OSError as e:
        sys.exit(f"--epymarl-python {python}: cannot run it ({e})")
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        sys.exit(f"--epymarl-python {python} cannot run EPyMARL on {key}: {last}\n"
                 "its environment needs what EPyMARL's src/main.py imports (sacred, pyyaml, "
                 "torch, gymnasium, smaclite, …) and lbforaging==2.0.0, and the id must be "
                 "one lbforaging registers")


def measure_epymarl(epymarl: Path, python: str, algo: str, key: str, steps: int, seed: int,
                    use_cuda: bool) -> dict:
    """One EPyMARL training run of ``steps`` env steps in a subprocess, timed as the module
    docstring says."""
    command = [python, "src/main.py", f"--config={algo}", "--env-config=gymma", "with",
               f"env_args.key={key}", f"env_args.time_limit={LBF_TIME_LIMIT}",
               f"t_max={steps}", f"seed={seed}", f"use_cuda={use_cuda}",
               "test_nepisode=1", f"test_interval={steps + 1}",  # one greedy test, at the start
               f"log_interval={steps + 1}",  # one summary line, after the last episode
               "use_tensorboard=False", "use_wandb=False", "save_model=False",
               "--unobserved"]  # sacred: no FileStorageObserver writing results/
    tail: collections.deque[str] = collections.deque(maxlen=30)
    stamps: dict[str, float] = {}
    counts: tuple[int, int] | None = None
    start = time.perf_counter()
    with subprocess.Popen(command, cwd=epymarl, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        assert process.stdout is not None
        for line in process.stdout:
            now = time.perf_counter()
            tail.append(line.rstrip())
            for marker in (TRAINING_STARTS, TRAINING_ENDS):
                if marker in line and marker not in stamps:
                    stamps[marker] = now
            if match := FINAL_STATS.search(line):
                counts = int(match[1]), int(match[2])
    process_s = time.perf_counter() - start
    if process.returncode or counts is None or len(stamps) < 2:
        sys.exit(f"EPyMARL {algo} on {key} failed (exit {process.returncode}); its last "
                 f"lines:\n" + "\n".join(tail) + "\ncommand: " + " ".join(command))
    env_steps, episodes = counts
    updates = max(0, episodes - EPYMARL_BATCH + 1)
    wall = stamps[TRAINING_ENDS] - stamps[TRAINING_STARTS]
    return {"algo": algo, "impl": "epymarl", "copies": 1, "env_steps": env_steps,
            "episodes": episodes, "updates": updates, "wall_s": round(wall, 2),
            "steps_per_s": round(env_steps / wall, 1),
            "updates_per_s": round(updates / wall, 1), "test_return": None,
            "process_s": round(process_s, 2), "startup_s": round(process_s - wall, 2)}


def median_row(rounds: list[dict]) -> dict:
    """The first round's row with the medians over all rounds of its timed figures."""
    row = dict(rounds[0])
    for key in TIMED:
        if key in row:
            row[key] = round(statistics.median(r[key] for r in rounds), 2)
    row["steps_per_s_rounds"] = [r["steps_per_s"] for r in rounds]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="lbf:8x8-2p-3f")
    parser.add_argument("--algos", nargs="+", default=["qmix", "iql"])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=2,
                        help="measurements of every setting, reference and ours alternating")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run of ours")
    parser.add_argument("--epymarl", type=Path, metavar="DIR",
                        help="an EPyMARL checkout to measure in the same run")
    parser.add_argument("--epymarl-python", default=sys.executable, metavar="PY",
                        help="the interpreter of EPyMARL's environment (default: this one)")
    parser.add_argument("--reference-env", default="",
                        help="measure ours on this env in the same run as the reference")
    parser.add_argument("--reference-copies", type=int, default=10)
    parser.add_argument("--reference-steps", type=int, default=0,
                        help="steps of a measured reference (EPyMARL or --reference-env); "
                             "0: --steps")
    parser.add_argument("--epymarl-qmix", type=float, default=330.0,
                        help="quoted EPyMARL QMIX steps/s, used without a measured reference")
    parser.add_argument("--epymarl-iql", type=float, default=210.0,
                        help="quoted EPyMARL IQL steps/s, used without a measured reference")
    args = parser.parse_args()
    if args.epymarl and args.reference_env:
        parser.error("give --epymarl or --reference-env, not both")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = tuple(args.set)
    ref_steps = args.reference_steps or args.steps
    key = ""
    if args.epymarl:
        try:
            key = lbforaging_id(args.env)
        except ValueError as e:
            parser.error(str(e))
        check_epymarl(args.epymarl, args.epymarl_python, args.algos, key)
        reference = (f"reference: EPyMARL measured in this run on {key} "
                     f"(time limit {LBF_TIME_LIMIT}), {ref_steps} env steps")
    elif args.reference_env:
        reference = f"reference: {args.reference_env}, {args.reference_copies} copies"
    else:
        reference = ("reference: EPyMARL figures QUOTED from the issue tracker, "
                     "not measured in this run")
    quoted = {"qmix": args.epymarl_qmix, "iql": args.epymarl_iql}
    rows = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for algo in args.algos:
            use_cuda = bool(args.epymarl) and load_config(
                algo, args.env, overrides=overrides).device.startswith("cuda")
            ref_rounds: list[dict] = []
            our_rounds: dict[int, list[dict]] = {copies: [] for copies in args.copies}
            for _ in range(args.rounds):
                if args.epymarl:
                    ref_rounds.append(measure_epymarl(args.epymarl, args.epymarl_python, algo,
                                                      key, ref_steps, args.seed, use_cuda))
                    ref_rounds[-1]["env"] = key
                elif args.reference_env:
                    ref_rounds.append(measure(algo, args.reference_env, ref_steps,
                                              args.reference_copies, args.seed, runs_dir,
                                              overrides))
                    ref_rounds[-1]["env"] = args.reference_env
                for copies in args.copies:
                    our_rounds[copies].append(measure(algo, args.env, args.steps, copies,
                                                      args.seed, runs_dir, overrides))
                    our_rounds[copies][-1]["env"] = args.env
            if ref_rounds:
                ref_row = median_row(ref_rounds)
                ref_row["reference_steps_per_s"], ref_row["ratio"] = None, None
                rows.append(ref_row)
                ref = ref_row["steps_per_s"]
            else:
                ref = quoted.get(algo)
            for copies in args.copies:
                row = median_row(our_rounds[copies])
                row["reference_steps_per_s"] = ref
                row["ratio"] = round(row["steps_per_s"] / ref, 2) if ref else None
                rows.append(row)
    print(f"{args.steps} env steps from scratch, EPyMARL defaults"
          f"{' + ' + ' '.join(overrides) if overrides else ''}, torch threads "
          f"{torch.get_num_threads()}, median of {args.rounds} round(s); {reference}")
    print(f"{'algo':<6}{'impl':<9}{'env':<34}{'copies':>7}{'episodes':>10}{'updates':>9}"
          f"{'wall s':>9}{'steps/s':>10}{'upd/s':>8}{'ref/s':>9}{'ratio':>8}")
    for r in rows:
        ratio = f"{r['ratio']:>7.1f}x" if r["ratio"] else f"{'-':>8}"
        ref = r["reference_steps_per_s"]
        ref_text = f"{ref:>9.0f}" if ref else f"{'-':>9}"
        print(f"{r['algo']:<6}{r['impl']:<9}{r['env']:<34}{r['copies']:>7}{r['episodes']:>10}"
              f"{r['updates']:>9}{r['wall_s']:>9.1f}{r['steps_per_s']:>10.0f}"
              f"{r['updates_per_s']:>8.1f}{ref_text}{ratio}")
    for r in rows:
        if r["impl"] == "epymarl":
            print(f"EPyMARL {r['algo']}: wall s is its training loop; the whole process took "
                  f"{r['process_s']:.1f} s, of which {r['startup_s']:.1f} s start-up and "
                  "shut-down (not in the ratio)")
    print(json.dumps({"bench": "train", "env": args.env, "steps": args.steps,
                      "overrides": list(overrides), "threads": torch.get_num_threads(),
                      "rounds": args.rounds, "reference": reference,
                      "reference_kind": ("epymarl" if args.epymarl else
                                         "env" if args.reference_env else "quoted"),
                      "reference_steps": ref_steps if args.epymarl or args.reference_env
                      else None,
                      "timing": {"ours": TIMING["ours"]} | (
                          {"epymarl": TIMING["epymarl"]} if args.epymarl else {}),
                      "rows": rows}))


if __name__ == "__main__":
    main()
