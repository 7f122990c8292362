"""RunLogger: what it writes is what TensorBoard reads back, and bad metrics are refused."""

from __future__ import annotations

import math

import pytest
import torch

from marl import logger as logger_module
from marl.logger import TAGS, RunLogger, register_tags

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _read(run_dir):
    acc = event_accumulator.EventAccumulator(str(run_dir))
    acc.Reload()
    return acc


def test_scalars_and_text_round_trip(tmp_path):
    run = RunLogger(tmp_path, total_steps=1000, progress=False)
    for step in (100, 200, 300):
        run.log("train", {"return_mean": torch.tensor(step / 100.0), "episode_length": 25}, step)
    run.log("learner", {"loss": 0.5, "grad_norm": torch.tensor(float("nan"))}, step=300)
    run.log("test", {"return_ci95": 0.125}, step=300)
    run.text("config", "lr: 0.0005\nbatch_size: 32")
    run.close()

    acc = _read(tmp_path)
    scalars = set(acc.Tags()["scalars"])
    assert scalars == {
        "train/return_mean",
        "train/episode_length",
        "learner/loss",
        "learner/grad_norm",
        "test/return_ci95",
    }
    returns = acc.Scalars("train/return_mean")
    assert [e.step for e in returns] == [100, 200, 300]
    assert [e.value for e in returns] == pytest.approx([1.0, 2.0, 3.0])
    assert [e.value for e in acc.Scalars("train/episode_length")] == pytest.approx([25.0] * 3)
    assert acc.Scalars("learner/loss")[0].value == pytest.approx(0.5)
    assert math.isnan(acc.Scalars("learner/grad_norm")[0].value)

    text_tags = [tag for tag in acc.Tags()["tensors"] if tag.startswith("config")]
    assert text_tags
    stored = acc.Tensors(text_tags[0])[0].tensor_proto.string_val[0].decode()
    assert stored.startswith("```") and "batch_size: 32" in stored


def test_unknown_tag_names_closest(tmp_path):
    with RunLogger(tmp_path, total_steps=10, progress=False, tensorboard=False) as run:
        with pytest.raises(ValueError, match="train/return_mean"):
            run.log("train", {"retrun_mean": 1.0}, step=0)
        with pytest.raises(ValueError, match="unknown metric tag 'bogus/x'"):
            run.log("bogus", {"x": 1.0}, step=0)


def test_non_scalar_tensor_rejected(tmp_path):
    with RunLogger(tmp_path, total_steps=10, progress=False) as run:
        with pytest.raises(ValueError, match="learner/loss"):
            run.log("learner", {"loss": torch.ones(1)}, step=0)
        with pytest.raises(ValueError, match="learner/loss"):
            run.log("learner", {"loss": torch.ones(2, 2)}, step=0)


def test_register_tags(tmp_path, monkeypatch):
    monkeypatch.setattr(logger_module, "TAGS", dict(TAGS))
    register_tags({"mansa/cl_fraction": "fraction of agents using centralised learning"})
    register_tags({"mansa/cl_fraction": "fraction of agents using centralised learning"})
    with pytest.raises(ValueError, match="already registered"):
        register_tags({"mansa/cl_fraction": "something else"})
    with pytest.raises(ValueError, match="group/name"):
        register_tags({"no_group": "x"})
    with RunLogger(tmp_path, total_steps=10, progress=False) as run:
        run.log("mansa", {"cl_fraction": 0.25}, step=1)
    assert _read(tmp_path).Scalars("mansa/cl_fraction")[0].value == pytest.approx(0.25)
    assert "mansa/cl_fraction" not in TAGS


def test_progress_disabled_is_silent(tmp_path, capsys):
    with RunLogger(tmp_path, total_steps=100, progress=False, tensorboard=False) as run:
        run.progress(50, steps_per_s=1000.0, recent_return=0.73)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_bar_shows_return(tmp_path, capsys):
    with RunLogger(tmp_path, total_steps=100, tensorboard=False, start_step=10) as run:
        run.progress(40, steps_per_s=1000.0, recent_return=0.73)
        run.progress(60, steps_per_s=1000.0, recent_return=None)
        assert run._bar.n == 60
    err = capsys.readouterr().err
    assert "ret=0.73" in err and "ret=n/a" in err and "60/100" in err


def test_close_is_idempotent(tmp_path):
    run = RunLogger(tmp_path, total_steps=10, progress=False)
    run.log("explore", {"epsilon": 0.05}, step=0)
    run.close()
    run.close()
    with pytest.raises(RuntimeError):
        run.log("explore", {"epsilon": 0.05}, step=1)
