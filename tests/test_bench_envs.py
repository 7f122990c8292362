"""``scripts/bench_envs.py`` runs (tiny settings): with rounds, each ratio is the median of
the rounds' own ratios, each taken beside that round's ``lbforaging`` figure."""

from __future__ import annotations

import json
import runpy
import statistics
import sys
from pathlib import Path

import pytest


def test_bench_envs_rounds_pair_each_figure_with_its_reference(capsys, monkeypatch):
    pytest.importorskip("lbforaging")
    bench = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "bench_envs.py"))
    monkeypatch.setattr(sys, "argv", ["bench_envs.py", "--envs", "8x8-2p-3f", "--copies", "8",
                                      "--seconds", "0.02", "--rounds", "3"])
    bench["main"]()
    lines = capsys.readouterr().out.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["rounds"] == 3
    by_impl = {r["impl"]: r for r in out["results"]}
    assert set(by_impl) == {"pettingzoo", "native", "lbforaging"}
    refs = by_impl["lbforaging"]["rounds_steps_per_s"]
    for row in out["results"]:
        assert len(row["rounds_steps_per_s"]) == 3 and all(v > 0 for v in row["rounds_steps_per_s"])
        assert row["rounds_ratio"] == pytest.approx(
            [v / r for v, r in zip(row["rounds_steps_per_s"], refs, strict=True)])
        assert row["ratio"] == pytest.approx(statistics.median(row["rounds_ratio"]))
        assert row["steps_per_s"] == pytest.approx(statistics.median(row["rounds_steps_per_s"]))
    assert "ratio range" in lines[0]


def test_bench_envs_refuses_no_rounds(monkeypatch):
    bench = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "bench_envs.py"))
    monkeypatch.setattr(sys, "argv", ["bench_envs.py", "--rounds", "0"])
    with pytest.raises(SystemExit) as stop:
        bench["main"]()
    assert stop.value.code == 2


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_bench_envs_compile_adds_a_compiled_row_beside_each_eager_one(capsys, monkeypatch):
    pytest.importorskip("lbforaging")
    bench = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "bench_envs.py"))
    monkeypatch.setattr(sys, "argv", ["bench_envs.py", "--envs", "8x8-2p-3f", "--copies", "1,8",
                                      "--seconds", "0.02", "--compile"])
    bench["main"]()
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {(r["impl"], r["copies"]) for r in out["results"]}
    assert ("native_compiled", 8) in rows and ("native", 8) in rows
    assert not any(impl == "native_compiled" and n == 1 for impl, n in rows)  # one copy: LBFOne
    assert all(r["steps_per_s"] > 0 for r in out["results"])
