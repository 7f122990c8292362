"""``scripts/gpu_check.sh`` runs unattended from a checkout, install included: checked here on
a CPU with ``--quick``, so that a lent GPU's scarce minutes never meet a broken script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent


@pytest.mark.slow
def test_gpu_check_installs_and_measures_every_part(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(out),
                           "--device", "cpu", "--quick"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads((out / "gpu_check.json").read_text())
    assert figures["device"] == "cpu" and figures["quick"] is True
    assert json.loads(done.stdout.strip().splitlines()[-1]) == figures
    assert (out / "gpu_check.log").read_text().strip().splitlines()[-1] == json.dumps(figures)
    rows = figures["rows"]
    kinds = [row["part"].split()[0] for row in rows]
    assert kinds == ["env"] * 6 + ["train"] * 6 + ["learn"] + ["cli"] * 18, kinds
    for row in rows:
        assert "error" not in row, row
    measured = [row for row in rows if row["part"].split()[0] != "cli"]
    trained = [row for row in measured if row["part"].split()[0] != "env"]
    for row in measured:
        assert row["steps_per_s"] > 0
    for row in trained:
        assert 0.0 <= row["test_return"] <= 1.0  # LBF's returns are normalised to [0, 1]
    round_trips = [row for row in rows if row["part"].split()[0] == "cli"]
    algos = {row["part"].split()[1] for row in round_trips}
    assert algos == {"iql", "vdn", "qmix", "ippo", "mappo", "mansa"}
    for row in round_trips:
        assert row["round_trip"] == ["train", "resume", "eval", "render"]


def _gpu_check_module():
    """scripts/gpu_check.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_part_past_its_limit_is_stopped_and_the_rest_run(tmp_path, monkeypatch, capsys):
    import time

    check = _gpu_check_module()
    monkeypatch.setattr(check, "parts", lambda device, quick: [
        ("train stuck", lambda: time.sleep(30) or {}),
        ("env quick", lambda: {"steps_per_s": 7.0}),
    ])
    out = tmp_path / "check.json"
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--device", "cpu", "--part-limit", "1",
                                      "--out", str(out)])
    check.main()
    rows = json.loads(out.read_text())["rows"]
    assert [row["part"] for row in rows] == ["train stuck", "env quick"]
    assert rows[0]["error"] == "stopped after --part-limit 1 s"
    assert rows[1]["steps_per_s"] == 7.0 and "error" not in rows[1]

    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--device", "cpu", "--only", "env",
                                      "--out", str(out)])
    check.main()
    assert [row["part"] for row in json.loads(out.read_text())["rows"]] == ["env quick"]
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--device", "cpu", "--only", "learn"])
    with pytest.raises(SystemExit):
        check.main()
    assert "no part's name holds" in capsys.readouterr().err
