"""marl report: its statistics equal rliable's, and run folders become a report that says what
it read and what it skipped."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from marl.report import (
    Run,
    SkippedRun,
    aggregate_scores,
    curve_band,
    improvement_probabilities,
    load_published,
    load_runs,
    main,
    mean_interval,
    min_max_normalise,
    score_table,
    summarise,
    value_at,
    write_report,
)

ENV = "lbf:8x8-2p-3f"
CURVES = {  # (algo, seed) -> test/return_mean at env steps 0, 100, 200
    ("iql", 1): [0.0, 0.2, 0.4],
    ("iql", 2): [0.1, 0.3, 0.8],
    ("iql", 3): [0.0, 0.5, 0.6],
    ("qmix", 1): [0.1, 0.6, 0.9],
    ("qmix", 2): [0.2, 0.4, 1.0],
}
STEPS = (0, 100, 200)


@pytest.fixture
def rliable():
    library = pytest.importorskip("rliable.library")
    metrics = pytest.importorskip("rliable.metrics")
    return library, metrics


def _run(algo: str, env: str, seed: int, final: float) -> Run:
    return Run(Path(f"{algo}_{seed}"), algo, env, seed, "test/return_mean", (), final, 100,
               1.0, 100.0)


def _write_run(folder: Path, algo: str, seed: int, values: list[float], *, steps: int = 200,
               summary: bool = True) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"algo: {algo}\nenv: {ENV}\nseed: {seed}\n"
                                        f"steps: {steps}\n")
    writer = SummaryWriter(log_dir=str(folder))
    for step, value in zip(STEPS, values, strict=False):  # fewer values: an unfinished run
        writer.add_scalar("test/return_mean", value, global_step=step)
    writer.close()
    if summary:
        (folder / "summary.json").write_text(json.dumps({
            "algo": algo, "env": ENV, "seed": seed, "env_steps": steps, "wall_s": 10.0 * seed,
            "steps_per_s": steps / (10.0 * seed), "test_return_mean": values[-1]}))
    return folder


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    for (algo, seed), values in CURVES.items():
        _write_run(root / f"{algo}_seed{seed}", algo, seed, values)
    return root


def test_iqm_mean_and_intervals_are_rliables(rliable):
    library, metrics = rliable
    rng = np.random.default_rng(0)
    scores = {"a": rng.random((5, 3)), "b": rng.random((4, 3)) + 0.2}
    np.random.seed(99)
    before = np.random.random()
    np.random.seed(99)
    ours = aggregate_scores(scores, reps=200, seed=7)
    assert np.random.random() == before  # the caller's global NumPy state is given back

    def iqm_and_mean(x):
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    for algo, x in scores.items():
        np.random.seed(7)
        point, interval = library.get_interval_estimates({algo: x}, iqm_and_mean, reps=200)
        got = ours[algo]
        assert [got.iqm.value, got.mean.value] == pytest.approx(point[algo])
        assert [got.iqm.lo, got.mean.lo] == pytest.approx(interval[algo][0])
        assert [got.iqm.hi, got.mean.hi] == pytest.approx(interval[algo][1])
        assert got.iqm.lo <= got.iqm.value <= got.iqm.hi
        assert (got.seeds, got.tasks) == x.shape
    assert aggregate_scores(scores, reps=200, seed=7) == ours  # reproducible

    pair = improvement_probabilities(scores, reps=100, seed=3)[("a", "b")]
    np.random.seed(3)
    point, interval = library.get_interval_estimates(
        {"pair": (scores["a"], scores["b"])}, metrics.probability_of_improvement, reps=100)
    assert [pair.value, pair.lo, pair.hi] == pytest.approx(
        [point["pair"], *np.ravel(interval["pair"])])


def test_probability_of_improvement_known_answers(rliable):
    low = np.array([[0.1, 0.2], [0.2, 0.1], [0.0, 0.3]])
    high = low + 1.0
    p = improvement_probabilities({"high": high, "low": low, "same": low.copy()}, reps=50)
    assert (p[("high", "low")].value, p[("high", "low")].lo, p[("high", "low")].hi) == (1, 1, 1)
    assert p[("high", "same")].value == 1.0
    assert p[("low", "same")].value == 0.5  # identical scores: no improvement either way


def test_min_max_normalisation_per_task():
    assert min_max_normalise([2.0, 4.0, 6.0, 10.0]) == pytest.approx([0.0, 0.25, 0.5, 1.0])
    assert min_max_normalise([3.0, 3.0]) == pytest.approx([0.5, 0.5])
    runs = [_run("x", "A", 1, 0.0), _run("x", "A", 2, 10.0), _run("y", "A", 1, 5.0),
            _run("y", "A", 2, 10.0), _run("x", "B", 1, -4.0), _run("x", "B", 2, -2.0),
            _run("y", "B", 1, -3.0), _run("y", "B", 2, -3.0)]
    table = score_table(runs)
    assert table.tasks == ("A", "B")
    np.testing.assert_allclose(table.scores["x"], [[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(table.scores["y"], [[0.5, 0.5], [1.0, 0.5]])
    raw = score_table(runs, normalise=False)
    np.testing.assert_allclose(raw.scores["y"], [[5.0, -3.0], [10.0, -3.0]])


def test_unequal_seeds_and_missing_tasks_are_said():
    runs = [_run("x", "A", s, float(s)) for s in (1, 2, 3)] + [
        _run("x", "B", s, float(s)) for s in (1, 2)] + [
        _run("y", "A", s, float(s)) for s in (4, 5)] + [
        _run("y", "B", 4, 0.0), _run("y", "C", 4, 0.0)]
    table = score_table(runs, normalise=False)
    assert table.tasks == ("A", "B")  # C: only y ran it
    np.testing.assert_allclose(table.scores["x"], [[1.0, 1.0], [2.0, 2.0]])  # lowest 2 seeds
    assert table.scores["y"].shape == (1, 2)
    notes = " ".join(table.notes)
    assert "x: 2 seeds per task" in notes and "A 3, B 2" in notes
    assert "C: not in the aggregates, as x did not run it" in notes


def test_curve_band_aligns_seeds_on_shared_steps():
    curves = [[(0, 1.0), (100, 2.0), (200, 3.0)], [(0, 3.0), (100, 4.0)], [(100, 6.0), (0, 5.0)]]
    band = curve_band(curves, reps=500, seed=1)
    assert band.x.tolist() == [0, 100]
    assert band.value == pytest.approx([3.0, 4.0])
    assert np.all(band.lo <= band.value) and np.all(band.value <= band.hi)
    assert np.all(band.lo >= 1.0) and np.all(band.hi <= 6.0)
    again = curve_band(curves, reps=500, seed=1)
    assert band.lo.tolist() == again.lo.tolist() and band.hi.tolist() == again.hi.tolist()
    assert curve_band([[(0, 1.0)], [(100, 2.0)]]).x.size == 0


def test_report_of_run_folders(runs_dir, tmp_path, rliable):
    _write_run(runs_dir / "iql_unfinished", "iql", 4, [0.0, 0.1], summary=False)
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "config.yaml").write_text("algo: [unclosed\n")
    not_a_run = tmp_path / "notes"
    not_a_run.mkdir()
    with pytest.warns(SkippedRun) as caught:
        runs = load_runs([runs_dir, not_a_run])
    said = [str(w.message) for w in caught]
    assert any("iql_unfinished" in m and "unfinished" in m for m in said)
    assert any("broken" in m and "config.yaml unreadable" in m for m in said)
    assert any(str(not_a_run) in m and "no run folder" in m for m in said)
    assert sorted((r.algo, r.seed) for r in runs) == sorted(CURVES)
    assert {r.metric for r in runs} == {"test/return_mean"}

    report = summarise(runs, reps=100)
    for algo in ("iql", "qmix"):
        band = report.curves[ENV][algo]
        assert band.x.tolist() == list(STEPS)
        by_hand = np.mean([v for (a, _), v in CURVES.items() if a == algo], axis=0)
        assert band.value == pytest.approx(by_hand)

    out = tmp_path / "report"
    path = write_report(runs, out, reps=100)
    assert path == out / "report.md"
    text = path.read_text()
    for png in (f"curves_{ENV.replace(':', '-')}.png", "aggregate.png", "improvement.png",
                "profile.png"):
        assert (out / png).is_file() and f"]({png})" in text
    for algo, seed in CURVES:
        assert f"| {algo} | {ENV} | {seed} | 200 | {10.0 * seed:.1f} |" in text
    assert "| iql | qmix |" in text  # the P(X > Y) row
    figures = json.loads((out / "report.json").read_text())
    assert figures["curves"][ENV]["qmix"]["mean"] == pytest.approx([0.15, 0.5, 0.95])
    assert set(figures["algorithms"]) == {"iql", "qmix"}


def test_a_report_of_one_algorithm_has_no_comparison_figure(runs_dir, tmp_path, rliable):
    runs = [r for r in load_runs([runs_dir]) if r.algo == "qmix"]
    out = tmp_path / "report"
    text = write_report(runs, out, reps=100).read_text()
    assert "One algorithm: nothing to compare." in text
    assert not (out / "improvement.png").exists() and "improvement.png" not in text
    assert (out / "aggregate.png").is_file() and (out / "profile.png").is_file()


def test_a_reports_runs_json_reads_back_as_the_runs_it_read(runs_dir, tmp_path, rliable):
    """runs.json carries the runs to a later report: the same curves, figures and report,
    joined by new run folders; a second copy of a seed, another metric and a foreign file
    are skipped with the reason."""
    first = [r for r in load_runs([runs_dir]) if r.seed < 3]
    write_report(first, tmp_path / "first", reps=50)
    kept = tmp_path / "first" / "runs.json"
    again = load_runs([kept])
    assert sorted(again, key=lambda r: (r.algo, r.seed)) == [
        replace(r, path=kept) for r in sorted(first, key=lambda r: (r.algo, r.seed))]
    assert {r.folder for r in again} == {"iql_seed1", "iql_seed2", "qmix_seed1", "qmix_seed2"}
    # the report folder itself, and run folders beside it: seed 3 joins, seeds 1-2 are not
    # counted twice
    with pytest.warns(SkippedRun) as caught:
        joined = load_runs([tmp_path / "first", runs_dir])
    assert sorted(str(w.message).split(": ")[1].split(" (")[0] for w in caught) == [
        f"a second run of {a} on {ENV} with seed {s}" for a in ("iql", "qmix") for s in (1, 2)]
    assert sorted((r.algo, r.seed) for r in joined) == sorted(CURVES)
    a = summarise(joined, reps=50)
    b = summarise(load_runs([runs_dir]), reps=50)
    assert a.aggregates == b.aggregates
    for algo in ("iql", "qmix"):
        assert a.curves[ENV][algo].value.tolist() == b.curves[ENV][algo].value.tolist()
    out = tmp_path / "second"
    write_report(joined, out, reps=50)
    assert "`iql_seed1`" in (out / "report.md").read_text()
    with pytest.warns(SkippedRun, match="holds 'test/return_mean', not 'test/win_rate'"), \
            pytest.raises(ValueError, match="no finished run"):
        load_runs([kept], metric="test/win_rate")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"runs": []}))
    with pytest.warns(SkippedRun, match="not a report's runs.json"), \
            pytest.raises(ValueError):
        load_runs([foreign])


def test_final_score_without_summary_is_the_last_point(tmp_path):
    _write_run(tmp_path / "r", "vdn", 1, [0.0, 0.3, 0.7], summary=False)
    (run,) = load_runs([tmp_path / "r"])
    assert (run.final, run.env_steps, run.wall_s) == (pytest.approx(0.7), 200, None)
    assert run.curve == ((0, 0.0), (100, pytest.approx(0.3)), (200, pytest.approx(0.7)))


def test_no_runs_is_an_error(tmp_path):
    with pytest.warns(SkippedRun), pytest.raises(ValueError, match=str(tmp_path)):
        load_runs([tmp_path])


def test_command_prints_the_report_and_a_json_line(runs_dir, tmp_path, capsys, rliable):
    assert main([str(runs_dir), "--out", str(tmp_path / "out"), "--reps", "50",
                 "--no-normalise"]) == 0
    path, line = capsys.readouterr().out.strip().splitlines()
    assert Path(path) == tmp_path / "out" / "report.md"
    figures = json.loads(line)
    assert figures["normalised"] is False and figures["tasks"] == [ENV]
    iqm = figures["algorithms"]["qmix"]["iqm"]
    assert iqm["ci95"][0] <= iqm["value"] <= iqm["ci95"][1]
    with pytest.warns(SkippedRun, match="not a folder"):
        assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "marl report: error: no finished run" in capsys.readouterr().err


def test_without_rliable_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rliable", None)
    with pytest.raises(ImportError, match=r"pip install marl-suite\[report\]"):
        aggregate_scores({"a": np.zeros((2, 1))})


def test_a_sweep_without_rliable_stops_before_its_trials(monkeypatch, tmp_path, capsys):
    """The report comes after every trial; without its packages the sweep says so at once
    and runs nothing (``--report ''`` runs without a report)."""
    from marl.cli import main

    monkeypatch.setitem(sys.modules, "rliable", None)
    runs = tmp_path / "runs"
    assert main(["sweep", "--algos", "iql", "--envs", "lbf:5x5-2p-1f", "--seeds", "1",
                 "--steps", "100", "--num-envs", "2", "--backend", "local",
                 "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert r"pip install marl-suite[report]" in err and "--report ''" in err
    assert not runs.exists() or not any(runs.iterdir())


def test_curriculum_runs_are_told_apart_by_teacher(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from marl.report import load_runs

    for teacher in ("plr", "paired"):
        run = tmp_path / teacher
        run.mkdir()
        (run / "config.yaml").write_text(f"algo: mappo\nenv: lbf:13x13-2p-3f\nseed: 1\n"
                                         f"steps: 10\nteacher:\n  name: {teacher}\n")
        writer = SummaryWriter(str(run))
        writer.add_scalar("heldout/solved_rate", 0.5, 10)
        writer.close()
    runs = load_runs([tmp_path], metric="heldout/solved_rate")
    assert sorted(r.algo for r in runs) == ["mappo+paired", "mappo+plr"]


def test_labelled_folders_compare_one_algorithm_with_itself(tmp_path):
    """tuned=DIR default=DIR: the same algorithm, env and seeds, reported as two algorithms."""
    for label, final in (("tuned", 0.9), ("default", 0.4)):
        for seed in (1, 2):
            _write_run(tmp_path / label / f"qmix_seed{seed}", "qmix", seed, [0.0, 0.2, final])
    runs = load_runs([f"tuned={tmp_path / 'tuned'}", f"default={tmp_path / 'default'}"])
    by_algo = {}
    for run in runs:
        by_algo.setdefault(run.algo, []).append(run.final)
    assert by_algo == {"qmix (tuned)": [pytest.approx(0.9)] * 2,
                       "qmix (default)": [pytest.approx(0.4)] * 2}
    odd = tmp_path / "a=b"  # an existing folder with '=' in its name is a folder, not a label
    _write_run(odd / "r", "vdn", 1, [0.0, 0.1, 0.2])
    assert [r.algo for r in load_runs([odd])] == ["vdn"]


def test_published_figures_are_drawn_and_tabled_beside_the_runs(runs_dir, tmp_path, capsys,
                                                                rliable):
    published = tmp_path / "published.yaml"
    published.write_text(f"'{ENV}':\n"
                         "  - {source: 'Paper A, QMIX', value: 0.93, steps: 2050000}\n"
                         "  - {source: 'Paper B', value: 0.5}\n"
                         "'lbf:15x15-4p-5f':\n  - {source: 'Paper A, QMIX', value: 0.2}\n")
    out = tmp_path / "out"
    assert main([str(runs_dir), "--out", str(out), "--reps", "50",
                 "--published", str(published)]) == 0
    text = (out / "report.md").read_text()
    # beside each published figure: every algorithm's mean final score and its env steps
    # and its best test point (the mean over seeds; here each curve rises to its end)
    assert (f"| {ENV} | Paper A, QMIX | 2,050,000 | 0.930 | iql 0.600 (200); qmix 0.950 (200) | "
            "iql 0.600 (200); qmix 0.950 (200) |" in text)
    assert f"| {ENV} | Paper B | – | 0.500 |" in text
    assert "| lbf:15x15-4p-5f |" not in text  # no run of that task: noted, not tabled
    assert "published figures left out, no run of their task: lbf:15x15-4p-5f" in text
    figures = json.loads((out / "report.json").read_text())
    assert figures["published"][0] == {"task": ENV, "source": "Paper A, QMIX", "value": 0.93,
                                       "steps": 2050000}


def test_best_test_point_is_the_peak_of_the_mean_over_seeds(tmp_path, capsys, rliable):
    # seed 1 peaks at step 100, seed 2 at 200: the mean over seeds (0.05, 0.8, 0.6) peaks at 100,
    # above either final score and below the mean of the seeds' own bests (0.85)
    _write_run(tmp_path / "runs" / "vdn_seed1", "vdn", 1, [0.0, 0.9, 0.4])
    _write_run(tmp_path / "runs" / "vdn_seed2", "vdn", 2, [0.1, 0.7, 0.8])
    published = tmp_path / "published.yaml"
    published.write_text(f"'{ENV}':\n  - {{source: 'Paper A, VDN (max)', value: 0.84}}\n")
    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), "--out", str(out), "--reps", "50",
                 "--published", str(published)]) == 0
    assert (f"| {ENV} | Paper A, VDN (max) | – | 0.840 | vdn 0.600 (200) | vdn 0.800 (100) |"
            in (out / "report.md").read_text())


@pytest.mark.parametrize(("text", "says"), [
    ("- 1\n", "a mapping of tasks"),
    ("'lbf:8x8-2p-3f': {source: a, value: 1}\n", "lbf:8x8-2p-3f: expected a list"),
    ("'lbf:8x8-2p-3f':\n  - {value: 1}\n", "entry 1: source must be a text"),
    ("'lbf:8x8-2p-3f':\n  - {source: a, value: high}\n", "value must be a number, got 'high'"),
    ("'lbf:8x8-2p-3f':\n  - {source: a, value: 1, steps: -5}\n", "steps must be a whole"),
    ("'lbf:8x8-2p-3f':\n  - {source: a, value: 1, seeds: 5}\n", "unknown keys ['seeds']"),
])
def test_bad_published_figures_name_the_entry_and_the_problem(runs_dir, tmp_path, capsys,
                                                              text, says):
    published = tmp_path / "published.yaml"
    published.write_text(text)
    assert main([str(runs_dir), "--out", str(tmp_path / "out"), "--published",
                 str(published)]) == 2
    err = capsys.readouterr().err
    assert f"marl report: error: published figures {published}" in err and says in err
    assert not (tmp_path / "out").exists()


def test_the_shipped_published_figures_load_and_name_catalogued_tasks():
    from marl.envs import make

    docs = Path(__file__).parent.parent / "docs"
    for path in sorted(docs.rglob("*_published.yaml")):
        figures = load_published(path)
        assert figures and all(0.0 <= p.value <= 1.0 for p in figures)
        for task in {p.task for p in figures}:
            make(task, num_envs=1).close()


def test_steps_to_reach_a_threshold_per_seed(runs_dir, tmp_path, capsys, rliable):
    # CURVES at steps 0, 100, 200: iql seeds reach 0.5 never, at 200, at 100; qmix at 100, 200
    assert main([str(runs_dir), "--out", str(tmp_path / "out"), "--reps", "50",
                 "--threshold", "0.5"]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert f"| {ENV} | iql | 2 of 3 | 150 | never, 200, 100 |" in text
    assert f"| {ENV} | qmix | 2 of 2 | 150 | 100, 200 |" in text
    assert main([str(runs_dir), "--out", str(tmp_path / "out2"), "--reps", "50",
                 "--threshold", "0.85"]) == 0
    figures = json.loads((tmp_path / "out2" / "report.json").read_text())
    assert figures["threshold"] == 0.85
    assert figures["reached"][ENV] == {"iql": [None, None, None], "qmix": [200, 200]}
    text = (tmp_path / "out2" / "report.md").read_text()
    assert f"| {ENV} | iql | 0 of 3 | – | never, never, never |" in text


@pytest.mark.parametrize("name", ["envs/smac_qmix_published.yaml",
                                  "tuned/epymarl_lbf_published.yaml"])
def test_shipped_published_figures_load_and_name_environments_that_build(name):
    from marl.envs.registry import make

    figures = load_published(Path(__file__).parents[1] / "docs" / name)
    for task in sorted({p.task for p in figures}):
        make(task, num_envs=1).reset()  # an unknown or malformed id raises, naming it


def test_mean_interval_is_students_t_over_seeds():
    # 1, 2, 3: mean 2, standard error 1/sqrt(3), t(0.975, 2 degrees of freedom) = 4.30265...
    e = mean_interval([3.0, 1.0, 2.0])
    assert (e.value, e.hi - e.value) == pytest.approx((2.0, 4.302652729911275 / 3 ** 0.5))
    assert e.value - e.lo == pytest.approx(e.hi - e.value)
    stats = pytest.importorskip("scipy.stats")
    x = [0.119, 0.253, 0.246]
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert (mean_interval(x).lo, mean_interval(x).hi) == pytest.approx((lo, hi))
    assert mean_interval([0.5]) is None and mean_interval([]) is None


def test_value_at_is_the_last_test_at_or_before_the_step():
    band = curve_band([[(100, 0.2), (200, 0.4)], [(100, 0.4), (200, 0.8)]], reps=50)
    assert value_at(band, 50) is None
    step, e = value_at(band, 150)
    assert step == 100 and e.value == pytest.approx(0.3) and e.lo <= e.value <= e.hi
    assert value_at(band, 200)[0] == 200 and value_at(band, 10**9)[0] == 200


def test_report_tables_each_seed_the_t_interval_and_means_at_steps(runs_dir, tmp_path, capsys,
                                                                   rliable):
    out = tmp_path / "out"
    assert main([str(runs_dir), "--out", str(out), "--reps", "50",
                 "--at", "250", "150", "1e2"]) == 0
    text = (out / "report.md").read_text()
    # iql's finals by seed 0.4, 0.8, 0.6: sd 0.2, t(0.975, 2) 0.2 / sqrt(3) = 0.497; qmix's
    # 0.9, 1.0: t(0.975, 1) 0.0707 / sqrt(2) = 0.635
    assert (f"| {ENV} | iql | `test/return_mean` | 3 | 0.600 | ± 0.497 | 0.400 | 0.800 | "
            "0.400 (1), 0.800 (2), 0.600 (3) |") in text
    assert (f"| {ENV} | qmix | `test/return_mean` | 2 | 0.950 | ± 0.635 | 0.900 | 1.000 | "
            "0.900 (1), 1.000 (2) |") in text
    # at 100 / 150 / 250 (sorted): the tests at 100, 100 and 200; iql's means 0.333, 0.6
    assert "| task | algorithm | at 100 | at 150 | at 250 |" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {ENV} | iql | 0.333"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2].startswith("0.333 [") and cells[2].endswith("]")
    assert cells[3].startswith("0.333 [") and cells[3].endswith("(100)")
    assert cells[4].startswith("0.600 [") and cells[4].endswith("(200)")
    figures = json.loads((out / "report.json").read_text())
    iql = figures["finals"][ENV]["iql"]
    assert iql["seeds"] == [1, 2, 3] and iql["values"] == pytest.approx([0.4, 0.8, 0.6])
    assert iql["ci95_t"] == pytest.approx([0.6 - 0.4968275, 0.6 + 0.4968275], abs=1e-6)
    asked = figures["at"][ENV]["qmix"]
    assert [(a["asked"], a["step"]) for a in asked] == [(100, 100), (150, 100), (250, 200)]
    assert asked[2]["value"] == pytest.approx(0.95)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([str(runs_dir), "--out", str(tmp_path / "bad"), "--at", "half"])
    assert "--at: expected a whole number of env steps, got 'half'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
