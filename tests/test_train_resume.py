"""Checkpoints: a resumed run equals an unbroken one; bad checkpoints stop with a clear error."""

from __future__ import annotations

import json

import pytest
import torch

from marl.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from marl.cli import main
from marl.config import ConfigError, load_config
from marl.train import train

SMALL = {
    "qmix": ("batch_size=4", "buffer_size=16", "target_update_interval=5",
             "epsilon_anneal_time=400"),
    "mappo": ("hidden_dim=16", "critic_hidden_dim=16", "rollout_steps=20", "num_minibatches=2"),
}
# IQL also tests mid-run, ε-greedily: the tests' own random stream must resume exactly too
SMALL["iql"] = SMALL["qmix"] + ("hidden_dim=16", "evaluation_epsilon=0.1")
TEST_INTERVAL = {"iql": 300}
SMALL["vdn"] = SMALL["qmix"]
SMALL["mansa"] = ("batch_size=4", "buffer_size=16", "il.hidden_dim=16", "cl.hidden_dim=16",
                  "il.target_update_interval=5", "cl.target_update_interval=5",
                  "il.epsilon_anneal_time=400", "cl.epsilon_anneal_time=400",
                  "switcher_rollout=7", "switch_cost=0.0")


def _config(algo: str, tmp_path, name: str, steps: int, save_interval: int = 0):
    overrides = SMALL[algo]
    return load_config(
        algo, "lbf:5x5-2p-1f",
        flags=dict(steps=steps, num_envs=4, progress=False, tensorboard=False, seed=3,
                   runs_dir=str(tmp_path), name=name, test_interval=TEST_INTERVAL.get(algo, 0),
                   test_episodes=4, save_interval=save_interval),
        overrides=overrides,
    )


def _final(run_dir) -> dict:
    return load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))


def _assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif hasattr(a, "__dataclass_fields__"):
        _assert_same(a.__dict__, b.__dict__, where)
    else:
        assert a == b, where


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["qmix", "iql", "mappo", "mansa"])
def test_resume_equals_unbroken_run(tmp_path, algo):
    n = 800
    straight = train(_config(algo, tmp_path, "straight", 2 * n, save_interval=n))
    first = train(_config(algo, tmp_path, "broken", n))
    assert first["env_steps"] == n and first["updates"] > 0
    resumed = train(None, resume=tmp_path / "broken", flags={"steps": 2 * n})
    assert resumed["env_steps"] == straight["env_steps"] == 2 * n
    assert resumed["updates"] == straight["updates"]
    assert resumed["test_return_mean"] == straight["test_return_mean"]
    a, b = _final(tmp_path / "straight"), _final(tmp_path / "broken")
    replay = ("learner", "runner", "replay", "sample_rng")
    parts = {"qmix": replay, "iql": replay, "mansa": replay, "mappo": ("learner", "runner")}[algo]
    assert set(parts) | {"config", "identity", "counters"} == set(a)
    for part in parts:
        _assert_same(a[part], b[part], part)
    c_a, c_b = dict(a["counters"]), dict(b["counters"])
    for volatile in ("wall", "next_test", "next_save", "last_test"):  # schedules
        c_a.pop(volatile), c_b.pop(volatile)
    assert c_a == c_b


def test_bad_checkpoints_stop_and_are_kept(tmp_path, capsys):
    train(_config("qmix", tmp_path, "run", 200))
    ckpt = latest_checkpoint(tmp_path / "run" / "checkpoints")
    good = ckpt.read_bytes()
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(corrupt))
    with pytest.raises(CheckpointError, match="corrupt"):
        train(None, resume=tmp_path / "run", flags={"steps": 400})
    assert ckpt.read_bytes() == bytes(corrupt)  # never replaced by a fresh start
    ckpt.write_bytes(good[: len(good) // 3])
    assert main(["train", "--resume", str(ckpt), "--steps", "400", "--no-progress"]) == 2
    assert "truncated" in capsys.readouterr().err
    ckpt.write_bytes(good)
    # the same run cannot be resumed as another algorithm or environment
    with pytest.raises(ConfigError, match="algo cannot change"):
        train(None, resume=tmp_path / "run", overrides=("algo=iql",))


def test_cli_train_eval_render(tmp_path, capsys):
    argv = ["train", "--algo", "vdn", "--env", "lbf:5x5-2p-1f", "--steps", "300",
            "--num-envs", "2", "--runs-dir", str(tmp_path), "--name", "cli", "--no-progress",
            "test_episodes=4", "replay.batch_size=2", "buffer_size=8", "log_interval=100"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["algo"] == "vdn" and summary["env_steps"] == 300
    assert (tmp_path / "cli" / "config.yaml").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "cli"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/return_mean", "train/return_std", "train/episode_length",
            "test/return_mean", "test/return_std", "test/return_ci95", "explore/epsilon",
            "learner/loss", "learner/td_error_abs", "learner/q_taken_mean",
            "learner/grad_norm", "speed/env_steps_per_s", "speed/updates_per_s"} <= scalars
    assert any(tag.startswith("config") for tag in events.Tags()["tensors"])

    assert main(["eval", "--checkpoint", str(tmp_path / "cli"), "--episodes", "10"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["episodes"] == 10 and "95% interval" in out[1]
    assert result["ci95_low"] <= result["return_mean"] <= result["ci95_high"]
    assert result["epsilon"] == 0.0 and "greedy episodes" in out[0]
    assert main(["eval", "--checkpoint", str(tmp_path / "cli"), "--episodes", "10",
                 "--epsilon", "0.05"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1])["epsilon"] == 0.05 and "ε-greedy (ε 0.05)" in out[0]

    gif = tmp_path / "episode.gif"
    assert main(["render", "--checkpoint", str(tmp_path / "cli"), "--out", str(gif)]) == 0
    frames = json.loads(capsys.readouterr().out.strip())["frames"]
    from PIL import Image

    with Image.open(gif) as im:
        assert 2 <= im.n_frames <= frames  # Pillow merges identical consecutive frames

    assert main(argv) == 2  # the same run folder again: refused, nothing overwritten
    assert "--resume" in capsys.readouterr().err

    assert main(["train", "--algo", "qmixx", "--env", "lbf:5x5-2p-1f"]) == 2
    assert "did you mean 'qmix'" in capsys.readouterr().err.lower()


def test_env_state_dict_continues_exactly():
    from marl.envs import make

    a = make("lbf:6x6-2p-2f", num_envs=16, seed=0)
    a.reset(seed=5)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        a.step(torch.randint(0, 6, (16, 2), generator=g) * 0)  # NONE is always available
    saved = a.state_dict()
    b = make("lbf:6x6-2p-2f", num_envs=16, seed=99)
    b.load_state_dict(saved)
    for _ in range(80):  # across autoresets, which draw from the pool and the generator
        actions = torch.randint(0, 6, (16, 2), generator=g)
        actions = torch.where(a.last_obs.avail.gather(-1, actions.unsqueeze(-1)).squeeze(-1),
                              actions, 0)
        sa, sb = a.step(actions), b.step(actions)
        assert torch.equal(sa.obs.obs, sb.obs.obs) and torch.equal(sa.reward, sb.reward)
        assert torch.equal(sa.done, sb.done)
    with pytest.raises(ValueError, match="num_envs"):
        make("lbf:6x6-2p-2f", num_envs=8).load_state_dict(saved)


def test_periodic_checkpoints_keep_the_newest(tmp_path):
    cfg = _config("vdn", tmp_path, "keep", 400, save_interval=100)
    cfg.keep_checkpoints = 2
    train(cfg)
    from marl.checkpoint import checkpoints

    names = [p.name for p in checkpoints(tmp_path / "keep" / "checkpoints")]
    assert names == ["step_000000300.pt", "step_000000400.pt"]
