"""Checkpoints: round trips, crash safety during save, and loud failures on bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from marl import checkpoint as ckpt
from marl.checkpoint import (
    CheckpointError,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

IDENTITY = {"algo": "qmix", "env": "lbf-8x8-2p-2f", "n_agents": 2, "obs_shape": (3, 5, 5)}


def _payload(seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    return {
        "t_env": 1000 + seed,
        "lr": 5e-4,
        "model": {"w": torch.randn(4, 3, generator=gen), "b": torch.zeros(3)},
        "nested": {"eps": [0.1, 0.05], "episodes": seed},
        "torch_rng": gen.get_state(),
        "numpy_rng": rng.bit_generator.state,
    }


def _assert_equal(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_equal(x, y)
    else:
        assert a == b


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_round_trip_restores_everything(tmp_path: Path) -> None:
    payload = _payload(0)
    path = save_checkpoint(tmp_path / "run" / checkpoint_name(1000), payload, identity=IDENTITY)
    assert path.exists()
    loaded = load_checkpoint(path)
    _assert_equal(loaded, payload)
    # The restored generator state reproduces the same stream.
    restored = torch.Generator()
    restored.set_state(loaded["torch_rng"])
    original = torch.Generator()
    original.set_state(payload["torch_rng"])
    assert torch.equal(torch.rand(5, generator=restored), torch.rand(5, generator=original))
    assert _leftovers(path.parent) == []


@pytest.mark.parametrize("target", ["replace", "fsync", "write"])
def test_crash_during_save_keeps_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    path = tmp_path / "latest.pt"
    save_checkpoint(path, _payload(1), identity=IDENTITY)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("simulated crash")

    if target == "replace":
        monkeypatch.setattr(ckpt.os, "replace", boom)
    elif target == "fsync":
        monkeypatch.setattr(ckpt.os, "fsync", boom)
    else:
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, handle):
                self.handle = handle

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

            def write(self, data):
                self.handle.write(data[: len(data) // 2])
                raise OSError("disk full")

        monkeypatch.setattr(ckpt.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))

    with pytest.raises(OSError):
        save_checkpoint(path, _payload(2), identity=IDENTITY)
    monkeypatch.undo()

    assert path.read_bytes() == before
    _assert_equal(load_checkpoint(path), _payload(1))
    assert _leftovers(tmp_path) == []


def test_truncated_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _payload(3), identity=IDENTITY)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    path.write_bytes(data[:20])  # cut inside the header
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_flipped_byte_is_corrupt(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _payload(4), identity=IDENTITY)
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt.*digest"):
        load_checkpoint(path)


def test_foreign_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="not a marl checkpoint"):
        load_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _payload(5), identity=IDENTITY)
    data = bytearray(path.read_bytes())
    data[8:12] = (ckpt.FORMAT_VERSION + 1).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="format version"):
        load_checkpoint(path)


def test_missing_file_lists_existing(tmp_path: Path) -> None:
    for step in (100, 200):
        save_checkpoint(tmp_path / checkpoint_name(step), {"t": step}, identity=IDENTITY)
    with pytest.raises(CheckpointError, match="does not exist") as info:
        load_checkpoint(tmp_path / checkpoint_name(300))
    message = str(info.value)
    assert checkpoint_name(100) in message and checkpoint_name(200) in message
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere" / "x.pt")


def test_identity_mismatch_names_keys_and_values(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", _payload(6), identity=IDENTITY)
    wrong = {**IDENTITY, "algo": "iql", "n_agents": 3}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, identity=wrong)
    message = str(info.value)
    assert "algo" in message and "'qmix'" in message and "'iql'" in message
    assert "n_agents" in message and "2" in message and "3" in message
    assert "env:" not in message and "obs_shape" not in message  # only differing keys
    # Same identity (a list shape from a config file matches a tuple) loads fine.
    same = {**IDENTITY, "obs_shape": list(IDENTITY["obs_shape"])}
    _assert_equal(load_checkpoint(path, identity=same), _payload(6))
    with pytest.raises(CheckpointError, match="extra"):
        load_checkpoint(path, identity={**IDENTITY, "extra": 1})


def test_latest_checkpoint_and_names(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "absent") is None
    steps = [5, 1_000, 20, 999, 100_000]
    for step in steps:
        save_checkpoint(tmp_path / checkpoint_name(step), {"t": step}, identity=IDENTITY)
    (tmp_path / "step_notanumber.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("ignore me")
    latest = latest_checkpoint(tmp_path)
    assert latest == tmp_path / checkpoint_name(100_000)
    assert load_checkpoint(latest)["t"] == 100_000
    # Legacy unpadded names still rank by number, not by string.
    (tmp_path / "step_2000000.pt").write_bytes(b"x")
    assert latest_checkpoint(tmp_path) == tmp_path / "step_2000000.pt"

    rng = np.random.default_rng(0)
    many = [int(x) for x in rng.integers(0, 10**9, size=200)] + [0, 9, 10, 99, 100]
    names = [checkpoint_name(t) for t in many]
    assert sorted(names) == [checkpoint_name(t) for t in sorted(many)]
    assert checkpoint_name(1234) == "step_000001234.pt"


def test_saving_and_loading_do_not_hold_the_body_in_memory(tmp_path: Path) -> None:
    """A checkpoint of 512 MiB is written and read with far less than 512 MiB more memory
    than its tensors take (the payload of a big replay must not be copied to be saved)."""
    import subprocess
    import sys

    script = f"""
import resource, torch
from marl.checkpoint import save_checkpoint, load_checkpoint
big = torch.ones(128, 1024, 1024)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
save_checkpoint({str(tmp_path / "big.pt")!r}, {{"x": big}}, identity={{}})
saved = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
del big
loaded = load_checkpoint({str(tmp_path / "big.pt")!r})["x"]
assert float(loaded.min()) == float(loaded.max()) == 1.0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((saved - before) // 1024, (after - before) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    save_mib, load_mib = int(out[0]), int(out[1])
    assert save_mib < 64, f"saving 512 MiB took {save_mib} MiB more memory"
    assert load_mib < 64, f"loading 512 MiB took {load_mib} MiB beyond its tensors"
