"""The suite on a GPU, in one unattended run: environment and training speed, and a learning run.

Made for a lent CUDA machine whose time is scarce (``scripts/gpu_check.sh`` installs the
package there first and calls this). Every part is sized to finish the whole run in under 8
minutes on one recent GPU, and one failing part (or one that outruns ``--part-limit``) is
reported without stopping the others:

1. environments, random available actions, validation off: LBF ``lbf:15x15-4p-5f`` and the
   grid observation's ``lbf:grid-2s-8x8-2p-2f`` at 65,536 copies, ``smac:3m`` at 4,096 and
   16,384 copies, ``smac:27m_vs_30m`` and ``smacv2:protoss_5_vs_5`` at 4,096;
2. training end to end from scratch (collection and updates; tests cut to one episode):
   QMIX on ``lbf:8x8-2p-3f`` (EPyMARL's defaults) at 16, 256 and 1,024 copies, MAPPO with a
   feed-forward 64 network at 4,096 copies and with EPyMARL's GRU 128 at 256 and 4,096;
3. a learning run: MAPPO on ``lbf:8x8-2p-3f`` at 4,096 copies, greedy test return at its end;
4. the command line's round trip on the device for every algorithm on LBF and SMAC, QMIX on
   SMACv2, IPPO with each curriculum teacher and on Crafter (the ``crafter`` extra): ``marl
   train``, ``--resume`` from its checkpoint, ``marl eval`` and ``marl render`` (a fault that
   only the GPU shows, such as an operation CUDA lacks, fails here rather than in a user's
   run).

Prints one table, then one JSON line (also written to ``--out``). ``--quick`` shrinks every
size so the script can be checked on a CPU in a minute.

    python scripts/gpu_check.py --device cuda --out gpu_check.json
    python scripts/gpu_check.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from marl.cli import main as marl_cli
from marl.config import load_config
from marl.envs import make
from marl.train import Trainer


class PartTimeout(Exception):
    """A part ran past ``--part-limit``: the rest of the lease goes to the other parts."""


def raise_timeout(signum: int, frame: Any) -> None:
    raise PartTimeout


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def env_speed(env_id: str, copies: int, seconds: float, device: str) -> dict[str, Any]:
    """Env steps per second (one step of one copy each) with random available actions."""
    env = make(env_id, num_envs=copies, device=device, validate=False, seed=0)
    obs = env.reset(seed=0)
    gen = torch.Generator(device=device).manual_seed(0)

    def act() -> torch.Tensor:
        noise = torch.rand(obs.avail.shape, generator=gen, device=device)
        return noise.masked_fill(~obs.avail, -1).argmax(-1)

    for _ in range(3):  # warm up (and the first allocations)
        obs = env.step(act()).obs
    sync(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(5):
            obs = env.step(act()).obs
        steps += 5
        sync(device)
    return {"steps_per_s": steps * copies / (time.perf_counter() - start)}


def train_speed(algo: str, env_id: str, copies: int, steps: int, device: str,
                overrides: tuple[str, ...] = (), test_episodes: int = 1) -> dict[str, Any]:
    """Env steps per second of ``marl train`` from scratch, and its last test return."""
    with tempfile.TemporaryDirectory() as runs_dir:
        cfg = load_config(algo, env_id, flags=dict(
            steps=steps, num_envs=copies, seed=1, device=device, progress=False,
            tensorboard=False, test_interval=0, test_episodes=test_episodes, save_interval=0,
            save_replay=False, runs_dir=runs_dir, name=f"{algo}-{copies}"),
            overrides=overrides)
        start = time.perf_counter()
        summary = Trainer(cfg).run()
        wall = time.perf_counter() - start
    return {"steps_per_s": summary["env_steps"] / wall, "wall_s": wall,
            "test_return": summary["test_return_mean"]}


def cli_round_trip(algo: str, env_id: str, device: str, *options: str) -> dict[str, Any]:
    """``marl train``, ``train --resume``, ``eval`` and ``render`` on ``device``, each to exit 0."""
    with tempfile.TemporaryDirectory() as runs_dir:
        run = f"{runs_dir}/run"
        common = ["--no-progress", "tensorboard=false", "test_interval=0", "test_episodes=2",
                  "save_interval=200"]
        commands = {
            "train": ["train", "--algo", algo, "--env", env_id, "--steps", "400", "--num-envs",
                      "4", "--device", device, "--runs-dir", runs_dir, "--name", "run",
                      *options, *common],
            "resume": ["train", "--resume", run, "--steps", "600", *common],
            "eval": ["eval", "--checkpoint", run, "--episodes", "4", "--device", device],
            "render": ["render", "--checkpoint", run, "--device", device, "--out",
                       f"{runs_dir}/episode.gif"],
        }
        for step, argv in commands.items():
            code = marl_cli(argv)
            if code != 0:
                raise RuntimeError(f"marl {step} exited {code}: marl {' '.join(argv)}")
    return {"round_trip": list(commands)}


def parts(device: str, quick: bool) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """(name, measurement) of every part, sized for a GPU or, ``quick``, for a CPU check."""
    def n(full: int, small: int) -> int:
        return small if quick else full

    seconds = 1.0 if quick else 10.0
    ff64 = ("use_rnn=false", "hidden_dim=64")
    return [
        (f"env lbf:15x15-4p-5f x{n(65536, 256)}",
         lambda: env_speed("lbf:15x15-4p-5f", n(65536, 256), seconds, device)),
        (f"env smac:3m x{n(4096, 64)}", lambda: env_speed("smac:3m", n(4096, 64), seconds,
                                                           device)),
        (f"env smac:3m x{n(16384, 128)}",
         lambda: env_speed("smac:3m", n(16384, 128), seconds, device)),
        (f"env smac:27m_vs_30m x{n(4096, 16)}",
         lambda: env_speed("smac:27m_vs_30m", n(4096, 16), seconds, device)),
        (f"env lbf:grid-2s-8x8-2p-2f x{n(65536, 256)}",
         lambda: env_speed("lbf:grid-2s-8x8-2p-2f", n(65536, 256), seconds, device)),
        (f"env smacv2:protoss_5_vs_5 x{n(4096, 32)}",
         lambda: env_speed("smacv2:protoss_5_vs_5", n(4096, 32), seconds, device)),
        (f"train qmix lbf:8x8-2p-3f x{n(16, 2)}",
         lambda: train_speed("qmix", "lbf:8x8-2p-3f", n(16, 2), n(20_000, 300), device)),
        (f"train qmix lbf:8x8-2p-3f x{n(256, 4)}",
         lambda: train_speed("qmix", "lbf:8x8-2p-3f", n(256, 4), n(100_000, 600), device)),
        (f"train qmix lbf:8x8-2p-3f x{n(1024, 8)}",
         lambda: train_speed("qmix", "lbf:8x8-2p-3f", n(1024, 8), n(300_000, 800), device)),
        (f"train mappo ff64 lbf:8x8-2p-3f x{n(4096, 8)}",
         lambda: train_speed("mappo", "lbf:8x8-2p-3f", n(4096, 8), n(2_000_000, 1000),
                             device, ff64)),
        (f"train mappo gru128 lbf:8x8-2p-3f x{n(256, 4)}",
         lambda: train_speed("mappo", "lbf:8x8-2p-3f", n(256, 4), n(500_000, 500), device)),
        (f"train mappo gru128 lbf:8x8-2p-3f x{n(4096, 8)}",
         lambda: train_speed("mappo", "lbf:8x8-2p-3f", n(4096, 8), n(4_000_000, 800), device)),
        (f"learn mappo ff64 lbf:8x8-2p-3f x{n(4096, 8)}",
         lambda: train_speed("mappo", "lbf:8x8-2p-3f", n(4096, 8), n(20_000_000, 2000),
                             device, ff64, test_episodes=n(100, 4))),
        *[(f"cli {algo} {env_id}", lambda algo=algo, env_id=env_id:
           cli_round_trip(algo, env_id, device))
          for algo in ("iql", "vdn", "qmix", "ippo", "mappo", "mansa")
          for env_id in ("lbf:5x5-2p-1f", "smac:3m")],
        ("cli qmix smacv2:protoss_5_vs_5",
         lambda: cli_round_trip("qmix", "smacv2:protoss_5_vs_5", device)),
        *[(f"cli ippo lbf:13x13-2p-3f --teacher {teacher}", lambda teacher=teacher:
           cli_round_trip("ippo", "lbf:13x13-2p-3f", device, "--teacher", teacher))
          for teacher in ("plr", "accel", "paired", "clutr")],
        ("cli ippo crafter:mac-2p", lambda: cli_round_trip("ippo", "crafter:mac-2p", device,
                                                           "env_args.length=100")),
    ]


def run_part(name: str, measure: Callable[[], dict[str, Any]], limit: int) -> dict[str, Any]:
    """One part's row: its figures, or its error; stopped after ``limit`` seconds (0: never)."""
    previous = signal.signal(signal.SIGALRM, raise_timeout)
    begun = time.perf_counter()
    signal.alarm(limit)
    try:
        row: dict[str, Any] = {"part": name, **measure()}
    except PartTimeout:
        row = {"part": name, "error": f"stopped after --part-limit {limit} s"}
    except Exception as e:  # one broken part must not cost the rest of a scarce lease
        row = {"part": name, "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc(limit=-4)}
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    row["seconds"] = time.perf_counter() - begun
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (a CPU check)")
    parser.add_argument("--out", default="",
                        help="also write the JSON line to this file (rewritten after each part)")
    parser.add_argument("--part-limit", type=int, default=150,
                        help="seconds a part may run before it is stopped and reported (0: none)")
    parser.add_argument("--only", nargs="+", default=[], metavar="WORD",
                        help="run only the parts whose names hold one of these words "
                             "(env, train, learn, qmix, mappo, ...)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device (use --device cpu --quick "
                     "to check the script)")
    gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else ""
    rows, start = [], time.perf_counter()
    chosen = [(name, measure) for name, measure in parts(args.device, args.quick)
              if not args.only or any(word in name for word in args.only)]
    if not chosen:
        parser.error(f"--only {' '.join(args.only)}: no part's name holds one of these words")
    for name, measure in chosen:
        row = run_part(name, measure, args.part_limit)
        rows.append(row)
        shown = (f"{row['steps_per_s']:>14,.0f}" if "steps_per_s" in row
                 else f"{'failed' if 'error' in row else 'ok':>14}")
        ret = f"{row['test_return']:.3f}" if row.get("test_return") is not None else ""
        unit = "env steps/s" if "steps_per_s" in row else ""
        print(f"{name:<44}{shown} {unit:<11} {ret:>7}  ({row['seconds']:.0f} s)"
              + (f"  {row['error']}" if "error" in row else ""), flush=True)
        line = json.dumps({"bench": "gpu_check", "device": args.device, "gpu": gpu,
                           "torch": torch.__version__, "python": platform.python_version(),
                           "quick": args.quick, "total_s": time.perf_counter() - start,
                           "rows": rows})
        if args.out:  # after every part, so that a run cut short keeps what it measured
            with open(args.out, "w") as f:
                f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
