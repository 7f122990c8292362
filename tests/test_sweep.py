"""Sweeps: the sweep spec (validation, grid and seeded random configurations, run names), the
local backend's retries and progress, and Ray Tune trials that finish, fail after their
retries, and resume after the driver is killed without redoing finished trials."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marl.checkpoint import latest_checkpoint
from marl.config import ConfigError, load_config
from marl.sweep import Job, Progress, RunFolderMismatch, run_local, run_or_read
from marl.sweep_spec import SweepSpec, load_sweep, run_name

TINY = ["test_interval=250", "test_episodes=2", "save_interval=250"]


def tiny(**kw) -> SweepSpec:
    base = dict(algos=["iql"], envs=["lbf:5x5-2p-1f"], seeds=[1, 2], steps=500, num_envs=2,
                overrides=list(TINY))
    return SweepSpec(**{**base, **kw})


def test_grid_crosses_grid_keys_and_names_each_configuration():
    spec = tiny(search={"lr": {"grid": [0.001, 0.01]}, "gamma": {"grid": [0.9, 0.99]}})
    configs = spec.configurations()
    assert sorted(configs) == sorted((f"lr={a}", f"gamma={b}") for a in (0.001, 0.01)
                                     for b in (0.9, 0.99))
    jobs = spec.jobs()
    assert len(jobs) == 4 * 2 and len({j.name for j in jobs}) == 8
    job = jobs[0]
    assert job.overrides == (*TINY, *configs[0])
    assert job.name == run_name("iql", "lbf:5x5-2p-1f", job.seed, configs[0])
    # the name depends on the configuration, not on the order of its keys
    assert run_name("iql", "e:x", 1, ("a=1", "b=2")) == run_name("iql", "e:x", 1, ("b=2", "a=1"))
    assert run_name("iql", "lbf:5x5-2p-1f", 3) == "iql_lbf-5x5-2p-1f_seed3"


def test_random_search_is_seeded_and_stays_in_its_space():
    space = {"lr": {"loguniform": [1e-4, 1e-2]}, "batch_size": {"randint": [8, 64]},
             "gamma": {"choice": [0.9, 0.99]}, "target_update_interval": {"grid": [100, 200]}}
    a = tiny(search=space, searcher="random", samples=5, search_seed=7).configurations()
    b = tiny(search=space, searcher="random", samples=5, search_seed=7).configurations()
    c = tiny(search=space, searcher="random", samples=5, search_seed=8).configurations()
    assert a == b and a != c and len(a) == 2 * 5
    for config in a:
        values = dict(item.split("=") for item in config)
        assert 1e-4 <= float(values["lr"]) <= 1e-2
        assert 8 <= int(values["batch_size"]) < 64
        assert values["gamma"] in ("0.9", "0.99")


@pytest.mark.parametrize("kw, words", [
    (dict(seeds=[1, 1]), "seeds"),
    (dict(steps=0), "steps"),
    (dict(steps="100"), "steps"),
    (dict(searcher="bayes"), "searcher"),
    (dict(overrides=["lr"]), "key=value"),
    (dict(search={"lr": {"uniform": [0.1]}}, searcher="random"), "low < high"),
    (dict(search={"lr": {"loguniform": [0, 1]}}, searcher="random"), "both > 0"),
    (dict(search={"lr": {"uniform": [0.1, 0.2]}}), "searcher random or optuna"),
    (dict(search={"lr": [0.1, 0.2]}), "expected one of grid"),
    (dict(configs=["no/such/tuned.yaml"]), "'no/such/tuned.yaml' is not a file"),
])
def test_bad_sweeps_name_the_problem(kw, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+")):
        tiny(**kw)


def test_check_names_a_misspelt_search_key_before_anything_runs():
    with pytest.raises(ConfigError, match="learning_rate"):
        tiny(search={"learning_rate": {"grid": [0.1]}}).check()
    tiny(search={"lr": {"grid": [0.1]}}).check()


def test_sweep_file_is_validated_and_flags_override_it(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("algos: [iql]\nenvs: ['lbf:5x5-2p-1f']\nseeds: [1, 2, 3]\n"
                    "search:\n  lr: {grid: [0.001, 0.01]}\n")
    spec = load_sweep(path, seeds=[4], steps=None)
    assert spec.seeds == [4] and spec.steps == SweepSpec(["a"], ["b"]).steps
    assert len(spec.jobs()) == 2
    # key=value arguments add to the file's overrides (the last of a key wins in a config)
    path.write_text("algos: [iql]\nenvs: ['lbf:5x5-2p-1f']\n"
                    "overrides: [save_interval=200, test_interval=100]\n")
    spec = load_sweep(path, overrides=["save_replay=false", "test_interval=50"])
    assert spec.overrides == ["save_interval=200", "test_interval=100", "save_replay=false",
                              "test_interval=50"]
    cfg = load_config("iql", "lbf:5x5-2p-1f", overrides=spec.jobs()[0].overrides)
    assert (cfg.save_interval, cfg.test_interval, cfg.save_replay) == (200, 50, False)
    path.write_text("algos: [iql]\nenvs: ['lbf:5x5-2p-1f']\nsead: 3\n")
    with pytest.raises(ConfigError, match="unknown key.*sead"):
        load_sweep(path)


def test_local_sweep_retries_then_reports_failure_while_others_finish(tmp_path):
    lines: list[str] = []
    spec = tiny(seeds=[1], search={"device": {"grid": ["cpu", "cuda:99"]}}, retries=1)
    progress = Progress(len(spec.jobs()), spec.metric, emit=lines.append)
    results = run_local(spec.jobs(), tmp_path, concurrent=2, retries=spec.retries,
                        progress=progress)
    by_device = {r.job.overrides[-1]: r for r in results}
    ok, bad = by_device["device=cpu"], by_device["device=cuda:99"]
    assert ok.status == "done" and ok.attempts == 1 and "test_return_mean" in ok.summary
    assert bad.status == "failed" and bad.attempts == 2 and "cuda:99" in bad.error
    assert (tmp_path / ok.job.name / "summary.json").is_file()
    assert lines[-1].startswith("trials: 1 done, 0 running, 1 failed, 0 pending of 2")
    retried = [line for line in lines if line.startswith(f"trial {bad.job.name}: attempt 1")]
    assert len(retried) == 1 and "cuda:99" in retried[0]  # the first failure is not lost
    # a rerun reads the finished trial back
    stamp = (tmp_path / ok.job.name / "summary.json").stat().st_mtime_ns
    again = run_local([ok.job], tmp_path)
    assert again[0].summary == ok.summary
    assert (tmp_path / ok.job.name / "summary.json").stat().st_mtime_ns == stamp


def test_a_run_folder_of_another_job_is_never_read_back_as_this_one(tmp_path):
    job = Job("iql_x_seed1", "iql", "lbf:5x5-2p-1f", 1, 500, 2, ("test_interval=250",))
    folder = tmp_path / job.name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"test_return_mean": 0.5}))
    # a folder from before records were kept is read back, and recorded
    assert run_or_read(job, tmp_path) == {"test_return_mean": 0.5}
    assert json.loads((tmp_path / f".{job.name}.json").read_text())["steps"] == 500
    assert run_or_read(job, tmp_path) == {"test_return_mean": 0.5}  # the same job: again
    longer = Job(job.name, "iql", "lbf:5x5-2p-1f", 1, 1000, 2, ("test_interval=250",))
    other_lr = Job(job.name, "iql", "lbf:5x5-2p-1f", 1, 500, 2, ("test_interval=250", "lr=0.1"))
    with pytest.raises(RunFolderMismatch, match=r"steps 500 there, 1000 here"):
        run_or_read(longer, tmp_path)
    result, = run_local([other_lr], tmp_path, retries=2)  # not retried: it would find the same
    assert result.status == "failed" and result.attempts == 1 and "lr=0.1" in result.error
    assert json.loads((folder / "summary.json").read_text()) == {"test_return_mean": 0.5}
    assert json.loads((tmp_path / f".{job.name}.json").read_text())["steps"] == 500
    # a record whose folder is gone is stale: a new job may take the name
    (folder / "summary.json").unlink()
    folder.rmdir()
    with pytest.raises(RuntimeError) as failed:  # runs it (and fails: no such algorithm)
        run_or_read(Job(job.name, "no_such_algo", "lbf:5x5-2p-1f", 1, 500, 2), tmp_path)
    assert not isinstance(failed.value, RunFolderMismatch)
    assert json.loads((tmp_path / f".{job.name}.json").read_text())["algo"] == "no_such_algo"


def _sweep_command(runs_dir: Path, *extra: str) -> list[str]:
    """``marl sweep`` as a user runs it; run it outside the checkout (``cwd``), where the
    sources cannot shadow the installed package."""
    return [sys.executable, "-m", "marl.cli", "sweep", "--algos", "iql", "--envs",
            "lbf:5x5-2p-1f", "--steps", "1500", "--num-envs", "2", "--runs-dir", str(runs_dir),
            "--num-cpus", "2", *extra, *TINY]


@pytest.mark.slow
def test_a_killed_local_sweeps_run_saves_where_it_stopped_and_exits(tmp_path):
    """The driver is killed: its run gets the parent-death signal (once for each thread of the
    driver it passes to as they exit), saves a checkpoint and stops, releasing its folder."""
    import fcntl

    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "marl.cli", "sweep", "--algos", "iql", "--envs",
               "lbf:5x5-2p-1f", "--seeds", "1", "--steps", "10000000", "--num-envs", "2",
               "--runs-dir", str(runs), "--backend", "local", "test_interval=0",
               "save_interval=2000"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, cwd=tmp_path)
    folder = runs / "iql_lbf-5x5-2p-1f_seed1"
    try:
        deadline = time.monotonic() + 300
        while latest_checkpoint(folder / "checkpoints") is None:  # the run is in its loop
            assert time.monotonic() < deadline and driver.poll() is None, "the run never saved"
            time.sleep(0.2)
        # Freeze the sweep (the run is in the driver's process group) so that no periodic save
        # can land between the listing and the kill and pass for the stop's own save.
        os.killpg(driver.pid, signal.SIGSTOP)
        before = {p.name for p in (folder / "checkpoints").glob("step_*.pt")}
        driver.kill()  # SIGKILL ends a stopped process; the run's parent-death signal waits
        driver.wait()
        os.killpg(driver.pid, signal.SIGCONT)  # the run wakes to that signal
        lock = os.open(runs / ".iql_lbf-5x5-2p-1f_seed1.lock", os.O_RDWR)
        try:
            deadline = time.monotonic() + 60
            while True:  # the run's process holds the folder's lock until it exits
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    assert time.monotonic() < deadline, "the run outlived its sweep by a minute"
                    time.sleep(0.2)
        finally:
            os.close(lock)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # whatever is left of the sweep
    after = {p.name for p in (folder / "checkpoints").glob("step_*.pt")}
    assert len(after - before) == 1, "the stopped run saved no checkpoint, or went on"
    assert latest_checkpoint(folder / "checkpoints").name in after - before
    assert not (folder / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one local Ray at a time under pytest -n
def test_ray_sweep_survives_a_killed_driver_and_writes_a_report(tmp_path):
    pytest.importorskip("ray")
    runs = tmp_path / "runs"
    seeds = ["--seeds", "1", "2", "3", "4"]
    driver = subprocess.Popen(_sweep_command(runs, *seeds, "--concurrent", "1"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not list(runs.glob("*/summary.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver, Ray and the runs it started
    driver.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/summary.json")}
    assert 1 <= len(finished) < 4
    out = subprocess.run(_sweep_command(runs, *seeds), capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["trials"] == line["done"] == 4 and line["failed"] == 0
    assert sorted(p.parent.name for p in runs.glob("*/summary.json")) == [
        f"iql_lbf-5x5-2p-1f_seed{s}" for s in (1, 2, 3, 4)]
    for name, stamp in finished.items():  # finished trials were read back, not run again
        assert (runs / name / "summary.json").stat().st_mtime_ns == stamp
    report = (runs / "report" / "report.md").read_text()
    assert all(f"| {s} |" in report for s in (1, 2, 3, 4))


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one local Ray at a time under pytest -n
def test_ray_trial_that_fails_is_retried_then_reported(tmp_path):
    pytest.importorskip("ray")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("search:\n  device: {grid: [cpu, 'cuda:99']}\nretries: 1\n")
    out = subprocess.run(_sweep_command(tmp_path / "runs", str(sweep), "--seeds", "1",
                                        "--report", ""),
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-3000:]
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["done"] == 1 and line["failed"] == 1
    rows = [r for r in out.stdout.splitlines() if r.startswith("iql_")]
    failed = [r for r in rows if " failed " in r]
    assert len(failed) == 1 and failed[0].split()[2] == "2"  # two attempts
    assert "cuda:99" in out.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one local Ray at a time under pytest -n
def test_optuna_search_runs_its_samples_inside_the_space(tmp_path):
    pytest.importorskip("optuna")
    sweep = tmp_path / "sweep.yaml"
    (tmp_path / "net.yaml").write_text("learner:\n  hidden_dim: 24\n")
    # a relative config path: its trials, in folders of their own, still find the file
    sweep.write_text("search:\n  lr: {loguniform: [0.0001, 0.01]}\nsearcher: optuna\n"
                     "samples: 2\nconfigs: [net.yaml]\n")
    out = subprocess.run(_sweep_command(tmp_path / "runs", str(sweep), "--seeds", "1",
                                        "--report", ""),
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted((tmp_path / "runs").glob("iql_*/config.yaml"))
    assert len(runs) == 2
    rates = [float(next(line.split(":")[1] for line in p.read_text().splitlines()
                        if line.strip().startswith("lr:"))) for p in runs]
    assert len(set(rates)) == 2 and all(1e-4 <= r <= 1e-2 for r in rates)
    assert all("hidden_dim: 24" in p.read_text() for p in runs)


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "configs" / "sweeps")
                                        .glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shipped_sweep_files_load_and_every_run_config_builds(path: Path, monkeypatch
                                                                   ) -> None:
    monkeypatch.chdir(path.parent.parent.parent)  # their config files are repository paths
    spec = load_sweep(path)
    spec.check()  # every algorithm × environment config loads with the fixed overrides
    assert len(spec.jobs()) == (len(spec.configurations()) * len(spec.algos)
                                * len(spec.envs) * len(spec.seeds))


def test_config_files_reach_every_run_and_an_edited_file_is_another_job(tmp_path):
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("learner:\n  lr: 0.00123\n")
    spec = tiny(seeds=[1], configs=[str(tuned)])
    spec.check()
    runs = tmp_path / "runs"
    result, = run_local(spec.jobs(), runs)
    assert result.status == "done"
    saved = (runs / result.job.name / "config.yaml").read_text()
    assert "lr: 0.00123" in saved
    assert run_local(spec.jobs(), runs)[0].summary == result.summary  # read back
    tuned.write_text("learner:\n  lr: 0.5\n")  # the same path, other values: not read back
    again, = run_local(spec.jobs(), runs)
    assert again.status == "failed" and "another job's run" in again.error
    assert "sha1:" in again.error
    without, = run_local(tiny(seeds=[1]).jobs(), runs)  # nor for the same job without the file
    assert without.status == "failed" and "configs" in without.error


def test_algo_in_a_config_path_gives_each_algorithm_its_own_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for algo, lr in (("iql", 0.001), ("vdn", 0.002)):
        (tmp_path / f"{algo}_tuned.yaml").write_text(f"learner:\n  lr: {lr}\n")
    spec = tiny(algos=["iql", "vdn"], seeds=[1], configs=["{algo}_tuned.yaml"])
    spec.check()
    files = {job.algo: job.configs for job in spec.jobs()}
    assert files == {a: (str((tmp_path / f"{a}_tuned.yaml").resolve()),) for a in ("iql", "vdn")}
    lrs = {a: load_config(a, "lbf:5x5-2p-1f", files=f).learner.lr for a, f in files.items()}
    assert lrs == {"iql": 0.001, "vdn": 0.002}
    with pytest.raises(ConfigError, match="'qmix_tuned.yaml' is not a file"):
        tiny(algos=["iql", "qmix"], configs=["{algo}_tuned.yaml"])
    with pytest.raises(ConfigError, match=r"the one placeholder a path may hold is \{algo\}"):
        tiny(configs=["{env}_tuned.yaml"])


def test_a_ray_trial_refuses_a_node_that_does_not_see_the_drivers_files(tmp_path):
    pytest.importorskip("ray")
    from marl.ray_sweep import check_node

    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("learner:\n  lr: 0.001\n")
    jobs = tiny(seeds=[1], configs=[str(tuned)]).jobs()
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(RuntimeError, match="does not see this sweep's --runs-dir"):
        check_node(runs, ".driver-x", jobs)  # another disk's folder of the same path
    (runs / ".driver-x").touch()
    check_node(runs, ".driver-x", jobs)
    tuned.unlink()
    with pytest.raises(RuntimeError, match=re.escape(f"the config file {tuned.resolve()}")):
        check_node(runs, ".driver-x", jobs)


def test_config_paths_are_fixed_where_the_sweep_is_made(tmp_path, monkeypatch):
    (tmp_path / "iql_tuned.yaml").write_text("learner:\n  lr: 0.001\n")
    monkeypatch.chdir(tmp_path)
    spec = tiny(seeds=[1], configs=["{algo}_tuned.yaml"])
    monkeypatch.chdir(tmp_path.parent)  # as a Ray trial builds an optuna sweep's jobs
    assert spec.jobs()[0].configs == (str((tmp_path / "iql_tuned.yaml").resolve()),)
