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
    assert kinds == ["env"] * 4 + ["train"] * 4 + ["learn"], kinds
    for row in rows:
        assert "error" not in row, row
        assert row["steps_per_s"] > 0
    for row in rows[4:]:
        assert 0.0 <= row["test_return"] <= 1.0  # LBF's returns are normalised to [0, 1]
