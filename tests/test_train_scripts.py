"""Every ``scripts/train_<algo>.py`` runs; PPO trains end to end on image observations."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

from marl.algos.qlearner import QLearner, QLearnerConfig
from marl.cli import main
from marl.envs import make

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPTS = Path(__file__).parent.parent / "scripts"
SMALL = {"q": ["replay.batch_size=2", "buffer_size=8", "hidden_dim=8"],
         "ppo": ["rollout_steps=10", "hidden_dim=8"],
         "mansa": ["replay.batch_size=2", "buffer_size=8", "il.hidden_dim=8", "cl.hidden_dim=8",
                   "switcher_rollout=5"]}


@pytest.mark.parametrize("algo", ["iql", "vdn", "qmix", "ippo", "mappo", "mansa"])
def test_train_script_smoke(tmp_path, capsys, monkeypatch, algo):
    small = SMALL["ppo" if algo.endswith("ppo") else "mansa" if algo == "mansa" else "q"]
    monkeypatch.setattr(sys, "argv", [
        f"train_{algo}.py", "--env", "lbf:5x5-2p-1f", "--steps", "200", "--num-envs", "2",
        "--runs-dir", str(tmp_path), "--name", algo, "--no-progress", "test_episodes=2",
        *small])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(SCRIPTS / f"train_{algo}.py"), run_name="__main__")
    assert exit_.value.code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["algo"] == algo and summary["env_steps"] == 200 and summary["updates"] > 0


def test_image_observations_train_eval_and_render(tmp_path, capsys):
    """IPPO with the convolutional encoder on LBF's grid observations ([3, 11, 11])."""
    run = tmp_path / "cnn"
    argv = ["train", "--algo", "ippo", "--env", "lbf:grid-5x5-2p-1f", "--steps", "400",
            "--num-envs", "4", "--runs-dir", str(tmp_path), "--name", "cnn", "--no-progress",
            "encoder=cnn", "cnn_channels=4", "hidden_dim=16", "critic_hidden_dim=16",
            "rollout_steps=25", "num_minibatches=2", "test_episodes=4", "log_interval=100"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["env_steps"] == 400 and summary["updates"] == 4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    assert {"learner/policy_loss", "learner/value_loss", "learner/entropy",
            "learner/approx_kl", "learner/clip_fraction", "learner/explained_variance",
            "train/return_mean", "test/return_mean"} <= set(events.Tags()["scalars"])
    assert main(["eval", "--checkpoint", str(run), "--episodes", "4"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 4
    # a policy-gradient learner tests its greedy policy: no ε to give it
    assert main(["eval", "--checkpoint", str(run), "--epsilon", "0.05"]) == 2
    assert "ε applies to the value-based learners (iql, vdn, qmix) only" in capsys.readouterr().err
    gif = tmp_path / "cnn.gif"
    assert main(["render", "--checkpoint", str(run), "--out", str(gif)]) == 0
    assert gif.stat().st_size > 0


@pytest.mark.slow
def test_report_mansa_runs_a_sweep_with_its_baselines_and_draws_it(tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setattr(sys, "argv", [
        "report_mansa.py", "--env", "lbf:5x5-2p-1f", "--costs", "0.0", "--seeds", "1",
        "--steps", "200", "--num-envs", "2", "--jobs", "2", "--runs-dir", str(tmp_path),
        "--out", str(tmp_path / "mansa.png"), "test_episodes=2", "replay.batch_size=2"])
    runpy.run_path(str(SCRIPTS / "report_mansa.py"), run_name="__main__")
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    methods = [row["method"].split()[0] for row in report["rows"]]
    assert methods == ["mansa", "iql", "qmix", "random"]
    mansa, iql, qmix, random = report["rows"]
    assert iql["cl_fraction"] == 0.0 and qmix["cl_fraction"] == 1.0
    assert 0 < mansa["cl_fraction"] < 1 and random["method"].startswith(
        f"random p={mansa['cl_fraction']:.4f}")
    assert (tmp_path / "mansa.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_take_one_thread_on_cpu_unless_told(tmp_path):
    from marl.train import intra_op_threads

    before = torch.get_num_threads()
    try:
        assert intra_op_threads(0, torch.device("cpu")) == 1
        assert intra_op_threads(3, torch.device("cpu")) == 3
        torch.set_num_threads(2)
        assert intra_op_threads(0, torch.device("meta")) == 2  # beside a GPU: as it is
        assert main(["train", "--algo", "iql", "--env", "lbf:5x5-2p-1f", "--steps", "50",
                     "--num-envs", "2", "--runs-dir", str(tmp_path), "--no-progress",
                     "test_episodes=1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bench_update_times_updates_on_a_batch_of_the_lengths_asked(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench_update.py", "--algo", "vdn", "--env",
                                      "lbf:5x5-2p-1f", "--lengths", "3", "10", "--updates", "2",
                                      "hidden_dim=8"])
    runpy.run_path(str(SCRIPTS / "bench_update.py"), run_name="__main__")
    figure = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figure["lengths"] == [3, 10] and figure["ms_per_update"] > 0
    module = runpy.run_path(str(SCRIPTS / "bench_update.py"))
    spec = make("lbf:5x5-2p-1f", num_envs=1).spec
    learner = QLearner(spec, QLearnerConfig(hidden_dim=8), device="cpu", seed=0)
    batch = module["random_batch"](learner, spec, 16, 3, 10, torch.Generator().manual_seed(0))
    assert batch["filled"].shape == (16, 10) and int(batch["length"].max()) == 10
    assert int(batch["length"].min()) >= 3
    assert torch.equal(batch["filled"].sum(1), batch["length"])
    assert torch.equal(batch["terminated"].nonzero()[:, 1], batch["length"] - 1)


def _policy_stats(tmp_path: Path, env_id: str, capsys, monkeypatch) -> dict:
    """scripts/smac_policy_stats.py's JSON line on a tiny QMIX run of ``env_id``."""
    name = env_id.split(":")[1]
    argv = ["train", "--algo", "qmix", "--env", env_id, "--steps", "200", "--num-envs", "2",
            "--runs-dir", str(tmp_path), "--name", name, "--no-progress", "test_episodes=2",
            *SMALL["q"]]
    assert main(argv) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["smac_policy_stats.py", "--checkpoint",
                                      str(tmp_path / name), "--battles", "4"])
    runpy.run_path(str(SCRIPTS / "smac_policy_stats.py"), run_name="__main__")
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_smac_policy_stats_counts_every_living_agents_greedy_action(tmp_path, capsys,
                                                                     monkeypatch):
    """scripts/smac_policy_stats.py on a tiny MMM run: the shares cover every action (the
    Medivac's as heals), sum to 1, and the battles' figures are within the map's bounds; on a
    map without a Medivac, no heals are listed."""
    out = _policy_stats(tmp_path, "smac:MMM", capsys, monkeypatch)
    share = out["action_share"]
    assert len(share) == 6 + 10 + 10 and sum(share.values()) == pytest.approx(1.0)
    assert "heal marine 2" in share and "target medivac 9" in share
    assert share["no-op"] == 0.0  # only the dead no-op, and they are not counted
    assert out["battles"] == 4 and 0 <= out["enemies_killed"] <= 10
    assert 0 <= out["allies_lost"] <= 10 and 0 <= out["win_rate"] <= 1
    share = _policy_stats(tmp_path, "smac:3m", capsys, monkeypatch)["action_share"]
    assert list(share) == ["no-op", "stop", "north", "south", "east", "west",
                           "target marine 0", "target marine 1", "target marine 2"]
