"""Runs nobody can hijack and nothing can lose: checkpoint safety and the command line's edges.

Each test is one way a run could run foreign code, escape its folder, lose work, or stop with
a traceback instead of an error that names the value.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import shutil
import signal
import weakref
from pathlib import Path

import pytest
import torch

import marl.train as train_module
from marl import checkpoint as ckpt
from marl.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from marl.cli import main
from marl.config import ConfigError, load_config
from marl.sweep import scalar_curve
from marl.train import RunInterrupted, Trainer, TrainingDiverged, train

SMALL = ("batch_size=4", "buffer_size=16", "target_update_interval=5", "hidden_dim=16",
         "epsilon_anneal_time=400", "test_episodes=2")
ENV = "lbf:5x5-2p-1f"


def _config(tmp_path: Path, name: str, steps: int, *overrides: str, algo: str = "qmix"):
    return load_config(algo, ENV, flags=dict(
        steps=steps, num_envs=4, progress=False, tensorboard=False, seed=3,
        runs_dir=str(tmp_path), name=name, test_interval=0), overrides=SMALL + overrides)


def _cli(*argv: str) -> list[str]:
    """A ``marl train`` command line for a small run of ours."""
    return ["train", "--no-progress", "--num-envs", "2", *SMALL, "tensorboard=false", *argv]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. a checkpoint never runs code -------------------------------------------------------
class _Payload:
    """Unpickling this calls ``marker.touch`` (any callable: ``os.system`` in an attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _forge(path: Path, marker: Path) -> Path:
    """A file with a valid header and digest whose body runs code when unpickled."""
    buffer = io.BytesIO()
    torch.save({"format": "marl-checkpoint", "version": ckpt.FORMAT_VERSION, "identity": {},
                "payload": {"config": _Payload(marker)}}, buffer)
    body = buffer.getvalue()
    header = ckpt._HEADER.pack(ckpt.MAGIC, ckpt.FORMAT_VERSION, len(body),
                               hashlib.sha256(body).digest())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body)
    return path


def test_forged_checkpoint_is_refused_without_running_anything(tmp_path, capsys):
    marker = tmp_path / "ran"
    forged = _forge(tmp_path / "run" / "checkpoints" / "step_000000100.pt", marker)
    (tmp_path / "run" / "config.yaml").write_text("algo: qmix\n")
    # the same bytes, loaded the unsafe way, do run code: the forgery is real
    torch.load(io.BytesIO(forged.read_bytes()[ckpt._HEADER.size:]), weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(forged)
    for argv in (["eval", "--checkpoint", str(forged)],
                 ["render", "--checkpoint", str(tmp_path / "run"),
                  "--out", str(tmp_path / "x.gif")],
                 ["train", "--resume", str(tmp_path / "run"), "--steps", "10"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "refused" in err and "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize("algo", ["qmix", "mappo", pytest.param("mansa", marks=pytest.mark.slow)])
def test_real_checkpoints_are_tensors_and_plain_values(tmp_path, algo):
    overrides = {"qmix": SMALL, "mappo": ("hidden_dim=16", "critic_hidden_dim=16",
                                          "rollout_steps=20", "num_minibatches=2"),
                 "mansa": ("batch_size=4", "buffer_size=16", "switcher_rollout=7")}[algo]
    cfg = load_config(algo, ENV, flags=dict(steps=200, num_envs=4, progress=False,
                                            tensorboard=False, runs_dir=str(tmp_path),
                                            name="r", test_interval=0, test_episodes=2),
                      overrides=overrides)
    train(cfg)
    file = latest_checkpoint(tmp_path / "r" / "checkpoints")
    body = file.read_bytes()[ckpt._HEADER.size:]
    torch.load(io.BytesIO(body), weights_only=True)  # raises on anything else


# --- 2. a run stays in its folder, config values are literal --------------------------------
@pytest.mark.parametrize("name", ["../../x", "../x", "/tmp/marl-escape", "a/b", "..", ".",
                                  "a\\b"])
def test_run_name_is_a_name_not_a_path(tmp_path, capsys, name):
    runs = tmp_path / "deep" / "runs"
    assert main(_cli("--algo", "qmix", "--env", ENV, "--steps", "10", "--runs-dir", str(runs),
                     "--name", name)) == 2
    err = capsys.readouterr().err
    assert "name=" in err and repr(name) in err and "Traceback" not in err
    assert not (tmp_path / "x").exists() and not Path("/tmp/marl-escape").exists()
    assert not runs.exists()


def test_config_values_are_not_interpolated(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MARL_TEST_TARGET", str(tmp_path / "stolen"))
    shared = tmp_path / "shared.yaml"
    shared.write_text("runs_dir: ${oc.env:MARL_TEST_TARGET}\n")
    assert main(_cli("--algo", "qmix", "--env", ENV, "--steps", "10",
                     "--config", str(shared))) == 2
    err = capsys.readouterr().err
    assert "runs_dir" in err and "interpolation" in err
    assert main(_cli("--algo", "qmix", "--env", ENV, "--steps", "10", "--runs-dir",
                     str(tmp_path), "name=${runs_dir}")) == 2
    assert "interpolation" in capsys.readouterr().err
    assert not (tmp_path / "stolen").exists()


# --- 3. resuming a loose file writes nothing beside it --------------------------------------
def test_resume_from_loose_file_starts_a_new_run_folder(tmp_path):
    train(_config(tmp_path / "runs", "origin", 200))
    loose = tmp_path / "some" / "dir"
    loose.mkdir(parents=True)
    (tmp_path / "some" / "config.yaml").write_text("mine: 1\n")  # a user's own file
    file = loose / "model.pt"
    shutil.copy(latest_checkpoint(tmp_path / "runs" / "origin" / "checkpoints"), file)
    before = _files(tmp_path / "some")

    summary = train(None, resume=file, flags={"steps": 400, "runs_dir": str(tmp_path / "runs"),
                                              "name": "continued"})
    assert _files(tmp_path / "some") == before  # nothing written beside the file
    assert summary["env_steps"] == 400
    assert summary["run_dir"] == str((tmp_path / "runs" / "continued").absolute())
    lineage = json.loads((tmp_path / "runs" / "continued" / "checkpoints" /
                          "lineage.json").read_text())
    assert lineage["written"][0]["parent"] == str(file.absolute())


# --- 4. SIGINT, SIGTERM and SIGUSR1 save a checkpoint that resumes --------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_signal_saves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch, capsys, signum):
    straight = train(_config(tmp_path, "straight", 800))
    iterate = train_module.ReplayTraining.iterate
    calls = {"n": 0}
    # a sweep's run gets its parent-death signal (SIGUSR1) once for each thread of the dying
    # sweep it passes to: the repeats are one request to stop, not a kill
    times = 3 if signum == signal.SIGUSR1 else 1

    def iterate_then_signal(self, c):
        calls["n"] += 1
        if calls["n"] == 60:  # at env step 240 of 800, as if a user stopped the run
            for _ in range(times):
                os.kill(os.getpid(), signum)
        return iterate(self, c)

    monkeypatch.setattr(train_module.ReplayTraining, "iterate", iterate_then_signal)
    argv = _cli("--algo", "qmix", "--env", ENV, "--steps", "800", "--seed", "3",
                "--runs-dir", str(tmp_path), "--name", "stopped", "--num-envs", "4",
                "test_interval=0")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    assert main(argv) == 128 + signum
    err = capsys.readouterr().err
    assert "--resume" in err and signal.Signals(signum).name in err
    assert [p.name for p in ckpt.checkpoints(tmp_path / "stopped" / "checkpoints")] == [
        "step_000000240.pt"]
    # the handlers the run found are back (SIGINT's is SIG_IGN under a shell's `cmd &`)
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    monkeypatch.setattr(train_module.ReplayTraining, "iterate", iterate)

    resumed = train(None, resume=tmp_path / "stopped", flags={"steps": 800})
    assert resumed["updates"] == straight["updates"]
    a = load_checkpoint(latest_checkpoint(tmp_path / "straight" / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "stopped" / "checkpoints"))
    for key, value in a["learner"]["agent"].items():
        assert torch.equal(value, b["learner"]["agent"][key]), key


def test_interrupted_run_raises_keyboard_interrupt_in_python(tmp_path, monkeypatch):
    trainer = Trainer(_config(tmp_path, "py", 800))
    iterate = train_module.ReplayTraining.iterate

    def iterate_then_signal(self, c):
        trainer._signal = signal.SIGINT
        return iterate(self, c)

    monkeypatch.setattr(train_module.ReplayTraining, "iterate", iterate_then_signal)
    with pytest.raises(KeyboardInterrupt) as stop:
        trainer.run()
    assert isinstance(stop.value, RunInterrupted) and stop.value.checkpoint.is_file()


# --- 5. rolling back keeps the new branch -------------------------------------------------
def test_rolling_back_keeps_the_newest_written_and_resumes_it(tmp_path):
    train(_config(tmp_path, "run", 400, "save_interval=100", "keep_checkpoints=2"))
    folder = tmp_path / "run" / "checkpoints"
    assert [p.name for p in ckpt.checkpoints(folder)] == ["step_000000300.pt",
                                                          "step_000000400.pt"]
    abandoned = (folder / "step_000000400.pt").read_bytes()

    train(None, resume=folder / "step_000000300.pt", flags={"steps": 400})
    names = [p.name for p in ckpt.written_order(folder)]
    assert names == ["step_000000400.pt", "step_000000400-2.pt"]  # nothing overwritten
    assert (folder / "step_000000400.pt").read_bytes() == abandoned
    assert latest_checkpoint(folder).name == "step_000000400-2.pt"

    train(None, resume=tmp_path / "run", flags={"steps": 500})  # continues the new branch
    lineage = json.loads((folder / "lineage.json").read_text())["written"]
    assert lineage[-1] == {"file": "step_000000500.pt", "parent": "step_000000400-2.pt"}
    assert [p.name for p in ckpt.written_order(folder)] == ["step_000000400-2.pt",
                                                            "step_000000500.pt"]


def test_rolling_back_leaves_one_value_per_step_in_tensorboard(tmp_path, caplog):
    """A resume from an older checkpoint logs its steps again; what the run had logged past
    the checkpoint is purged, so a curve holds each step once (and, the resume being exact,
    the same values), without the reader's warning about a "TensorFlow restart"."""
    flags = dict(steps=400, num_envs=4, progress=False, tensorboard=True, seed=3,
                 runs_dir=str(tmp_path), name="run", test_interval=100, save_interval=100,
                 keep_checkpoints=4, log_interval=20)
    train(load_config("qmix", ENV, flags=flags, overrides=SMALL))
    run = tmp_path / "run"
    tags = ("explore/epsilon", "test/return_mean")
    unbroken = {tag: scalar_curve(run, tag) for tag in tags}
    assert [step for step, _ in unbroken["test/return_mean"]] == [0, 100, 200, 300, 400]
    assert len([step for step, _ in unbroken["explore/epsilon"] if step > 200]) >= 5
    train(None, resume=run / "checkpoints" / "step_000000200.pt", flags={"steps": 400})
    caplog.clear()
    assert {tag: scalar_curve(run, tag) for tag in tags} == unbroken
    assert len(list(run.glob("events.out.tfevents.*"))) == 2
    assert not [r for r in caplog.records if "out of order" in r.getMessage()]


def test_lineage_names_outside_the_folder_are_ignored(tmp_path):
    folder = tmp_path / "checkpoints"
    victim = tmp_path / "victim.pt"
    victim.write_bytes(b"keep me")
    save_checkpoint(folder / "step_000000001.pt", {}, identity={})
    (folder / "lineage.json").write_text(json.dumps({"written": [
        {"file": "../victim.pt"}, {"file": "step_000000001.pt"}]}))
    assert ckpt.prune_checkpoints(folder, 0) == [folder / "step_000000001.pt"]
    assert victim.read_bytes() == b"keep me"


# --- 6. a new run never writes into another run's folder -----------------------------------
def test_new_run_refuses_a_folder_holding_a_run_without_checkpoints(tmp_path, capsys):
    run = tmp_path / "taken"
    run.mkdir()
    (run / "config.yaml").write_text("algo: vdn\n")
    (run / "events.out.tfevents.1").write_bytes(b"x")
    before = _files(run)
    assert main(_cli("--algo", "qmix", "--env", ENV, "--steps", "10", "--runs-dir",
                     str(tmp_path), "--name", "taken")) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert _files(run) == before
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    assert main(_cli("--algo", "qmix", "--env", ENV, "--steps", "10", "--runs-dir",
                     str(tmp_path), "--name", "empty")) == 0


# --- 7. a resume writes the checkpoints an unbroken run writes; killed saves are cleaned ----
def test_resume_writes_no_extra_checkpoint_and_cleans_temp_files(tmp_path):
    train(_config(tmp_path, "straight", 400, "save_interval=100", "keep_checkpoints=10"))
    train(_config(tmp_path, "broken", 200, "save_interval=100", "keep_checkpoints=10"))
    folder = tmp_path / "broken" / "checkpoints"
    stale = folder / ".step_000000300.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    (folder / "notes.txt").write_text("mine")
    train(None, resume=tmp_path / "broken", flags={"steps": 400})
    names = [p.name for p in ckpt.checkpoints(folder)]
    assert names == [p.name for p in ckpt.checkpoints(tmp_path / "straight" / "checkpoints")]
    assert names == [f"step_{s:09d}.pt" for s in (100, 200, 300, 400)]
    assert not stale.exists() and (folder / "notes.txt").exists()


# --- 8. inputs that gave tracebacks give errors naming the value ---------------------------
@pytest.mark.parametrize("args, named", [
    (("--device", "cuda:abc"), "cuda:abc"),
    (("--device", "cudax"), "cudax"),
    (("replay.device=bogus",), "bogus"),
    (("--seed", "99999999999999999999999"), "99999999999999999999999"),
    (("env_args.penalty=abc",), "abc"),
    (("env_args.max_player_level=0",), "max_player_level"),
    (("lr=inf",), "lr=inf"),
    (("lr=nan",), "lr=nan"),
])
def test_bad_inputs_exit_2_naming_the_value(tmp_path, capsys, args, named):
    assert main(_cli("--algo", "qmix", "--env", ENV, "--steps", "10", "--runs-dir",
                     str(tmp_path), *args)) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(_cli("--algo", "qmix", "--env", ENV, "--bogus-flag"))
    assert stop.value.code == 2 and "--bogus-flag" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_devices_are_errors(tmp_path, capsys):
    from marl.envs import make

    with pytest.raises(ValueError, match="device='cuda' is not available"):
        make(ENV, num_envs=2, device="cuda")
    for device in ("cuda", "cuda:1"):
        assert main(_cli("--algo", "qmix", "--env", ENV, "--steps", "10", "--runs-dir",
                         str(tmp_path), "--device", device)) == 2
        assert f"device={device!r} is not available" in capsys.readouterr().err
    if not torch.backends.mps.is_available():
        assert main(_cli("--algo", "qmix", "--env", ENV, "--steps", "10", "--runs-dir",
                         str(tmp_path), "--device", "mps")) == 2
        assert "'mps' is not available" in capsys.readouterr().err


@pytest.fixture
def finished_run(tmp_path) -> Path:
    train(_config(tmp_path, "done", 200))
    return tmp_path / "done"


def test_eval_and_render_inputs(finished_run, tmp_path, capsys):
    run = str(finished_run)
    cases = [
        (["render", "--checkpoint", run, "--fps", "0", "--out", str(tmp_path / "a.gif")],
         "--fps 0"),
        (["render", "--checkpoint", run, "--out", str(tmp_path / "missing" / "a.gif")],
         "does not exist"),
        (["render", "--checkpoint", run, "--out", str(tmp_path / "a.png")], ".gif"),
        (["eval", "--checkpoint", run, "--episodes", "0"], "--episodes 0"),
        (["eval", "--checkpoint", run, "--device", "cudax"], "cudax"),
        (["eval", "--checkpoint", run, "--epsilon", "1.5"], "--epsilon 1.5"),
    ]
    for argv, named in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "a.gif").exists() and not (tmp_path / "a.png").exists()

    bare = save_checkpoint(tmp_path / "bare.pt", {"learner": {}}, identity={})
    assert main(["eval", "--checkpoint", str(bare)]) == 2
    assert "no 'config'" in capsys.readouterr().err


# --- 9. resume refuses what a checkpoint fixes and never writes a misleading config ---------
@pytest.mark.parametrize("args, key", [
    (("--num-envs", "8"), "num_envs"),
    (("mixer=vdn",), "learner.mixer"),
    (("hidden_dim=32",), "learner.hidden_dim"),
    (("use_rnn=true",), "learner.use_rnn"),
    (("--algo", "iql"), "algo"),
    (("--env", "smac:3m"), "env"),
    (("--seed", "9"), "seed"),
    (("env_args.penalty=0.5",), "env_args.penalty"),
    (("--name", "other"), "--name"),
    (("--runs-dir", "elsewhere"), "--runs-dir"),
])
def test_resume_refuses_what_the_checkpoint_fixes(finished_run, capsys, args, key):
    before = _files(finished_run)
    assert main(["train", "--resume", str(finished_run), "--steps", "400", *args]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert _files(finished_run) == before


def test_resume_below_the_current_step_warns_and_writes_nothing(finished_run, capsys):
    before = _files(finished_run)
    with pytest.warns(UserWarning, match="already at env step 200"):
        summary = train(None, resume=finished_run, flags={"steps": 100})
    assert summary["env_steps"] == 200 and _files(finished_run) == before


def test_resume_may_change_the_schedule(finished_run):
    summary = train(None, resume=finished_run, flags={"steps": 400},
                    overrides=("test_episodes=3", "keep_checkpoints=1"))
    assert summary["env_steps"] == 400
    assert "test_episodes: 3" in (finished_run / "config.yaml").read_text()
    assert [p.name for p in ckpt.checkpoints(finished_run / "checkpoints")] == [
        "step_000000400.pt"]


# --- 10. overrides anywhere ---------------------------------------------------------------
def test_overrides_between_options(tmp_path, capsys):
    argv = ["train", "lr=0.001", "--algo", "qmix", "gamma=0.9", "--env", ENV, "batch_size=2",
            "--steps", "10", "buffer_size=4", "--runs-dir", str(tmp_path), "--name", "mixed",
            "--no-progress", "test_episodes=2", "tensorboard=false"]
    assert main(argv) == 0
    saved = (tmp_path / "mixed" / "config.yaml").read_text()
    assert "lr: 0.001" in saved and "gamma: 0.9" in saved and "batch_size: 2" in saved
    with pytest.raises(SystemExit):
        main(["eval", "--checkpoint", str(tmp_path / "mixed"), "lr=0.1"])


# --- 11. non-finite training stops ------------------------------------------------------
def test_diverging_training_stops_naming_when_and_what(tmp_path, capsys):
    cfg = _config(tmp_path, "nan", 2000, "lr=1e30", "log_interval=200", "save_interval=1000")
    with pytest.raises(TrainingDiverged, match=r"between env steps \d+ and \d+: .*NaN"):
        train(cfg)
    assert latest_checkpoint(tmp_path / "nan" / "checkpoints") is None  # nothing NaN saved
    assert main(_cli("--algo", "qmix", "--env", ENV, "--steps", "2000", "--runs-dir",
                     str(tmp_path), "--name", "nan2", "lr=1e30", "log_interval=200")) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "Traceback" not in err


# --- 12. hints for command-line users; absolute run folders -------------------------------
def test_corrupt_newest_checkpoint_names_the_file_to_pass(tmp_path, capsys):
    train(_config(tmp_path, "run", 200, "save_interval=100"))
    newest = latest_checkpoint(tmp_path / "run" / "checkpoints")
    newest.write_bytes(newest.read_bytes()[:-10])
    assert main(["train", "--resume", str(tmp_path / "run"), "--steps", "300"]) == 2
    err = capsys.readouterr().err
    earlier = tmp_path / "run" / "checkpoints" / "step_000000100.pt"
    assert f"--resume {earlier}" in err and "latest_checkpoint" not in err


def test_run_dir_is_always_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config("qmix", ENV, flags=dict(steps=100, num_envs=2, progress=False,
                                              tensorboard=False, runs_dir="runs", name="rel",
                                              test_interval=0), overrides=SMALL)
    fresh = train(cfg)
    resumed = train(None, resume="runs/rel", flags={"steps": 200})
    assert fresh["run_dir"] == resumed["run_dir"] == str(tmp_path / "runs" / "rel")


# --- 13. a resumed run lets go of the loaded checkpoint -----------------------------------
def test_resumed_run_frees_the_loaded_checkpoint(finished_run, monkeypatch):
    refs: list[weakref.ref] = []
    load, run = train_module.load_checkpoint, Trainer.run

    def load_and_watch(*args, **kwargs):
        raw = load(*args, **kwargs)
        refs.append(weakref.ref(raw["replay"]["data"]["obs"]))
        return raw

    def run_and_check(self):
        gc.collect()
        assert refs and refs[0]() is None, "the loaded replay is still held"
        return run(self)

    monkeypatch.setattr(train_module, "load_checkpoint", load_and_watch)
    monkeypatch.setattr(Trainer, "run", run_and_check)
    assert train(None, resume=finished_run, flags={"steps": 300})["env_steps"] == 300


def test_config_errors_are_config_errors():
    with pytest.raises(ConfigError, match="seed"):
        load_config("qmix", ENV, flags={"seed": -1})


def test_bare_cuda_is_the_current_device_with_its_index(monkeypatch):
    """Tensors made on ``cuda`` say ``cuda:0``; the environments compare devices exactly."""
    from marl.devices import available_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert available_device("cuda") == torch.device("cuda", 1)
    assert available_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="2 CUDA device"):
        available_device("cuda:2")
