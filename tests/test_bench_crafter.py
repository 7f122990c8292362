"""``scripts/bench_crafter.py`` runs (tiny settings) and ends with its JSON line."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest


def test_bench_crafter_runs(capsys, monkeypatch):
    pytest.importorskip("crafter")
    bench = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "bench_crafter.py"))
    monkeypatch.setattr(sys, "argv", [
        "bench_crafter.py", "--parts", "speed", "table", "--players", "2", "--copies", "1",
        "--obs-types", "symbolic", "--seconds", "0.01", "--rounds", "1", "--area", "32",
        "--episodes", "1", "--length", "20"])
    bench["main"]()
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = out["speed"]["rows"]
    assert row["player_steps_per_s"] == pytest.approx(2 * row["env_steps_per_s"], rel=1e-3)
    table = out["table"]
    assert len(table["achievements"]) == 22 and table["team_achievements_mismatches"] == 0
    assert all(table["mean_length"][k] <= 20 for k in ("crafter_env", "team", "per_player"))
    assert bench["crafter_score"]([0.0] * 22) == 0.0
    assert bench["crafter_score"]([1.0] * 22) == pytest.approx(100.0)
    child = bench["reset_child"](32, 0.0, least=1)  # in this process: what a child reports
    assert set(child["times"]) == {"crafter_2p", "crafter_env"}
