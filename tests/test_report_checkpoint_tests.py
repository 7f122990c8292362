"""``marl report --test-episodes``: the final checkpoints tested again, as ``marl eval`` tests
them, tabled per task and algorithm and kept in ``runs.json``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from marl.cli import main as marl_main
from marl.config import load_config
from marl.report import (
    CheckpointTest,
    UntestedRun,
    load_runs,
    main,
    with_checkpoint_tests,
    write_report,
)
from marl.train import train

ENV = "lbf:5x5-2p-1f"
SMALL = ("batch_size=4", "buffer_size=16", "target_update_interval=5", "hidden_dim=16",
         "epsilon_anneal_time=400", "test_episodes=2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two QMIX seeds and one IPPO seed, trained briefly: finished runs with checkpoints."""
    root = tmp_path_factory.mktemp("runs")
    for algo, seed, overrides in (("qmix", 1, SMALL), ("qmix", 2, SMALL),
                                  ("ippo", 1, ("hidden_dim=16", "test_episodes=2"))):
        train(load_config(algo, ENV, flags=dict(
            steps=300, num_envs=4, progress=False, tensorboard=True, seed=seed,
            runs_dir=str(root), name=f"{algo}_seed{seed}", test_interval=100),
            overrides=overrides))
    return root


def _marl_eval(run: Path, episodes: int, seed: int, epsilon: float | None, capsys) -> float:
    argv = ["eval", "--checkpoint", str(run), "--episodes", str(episodes), "--seed", str(seed)]
    assert marl_main(argv + ([] if epsilon is None else ["--epsilon", str(epsilon)])) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["return_mean"]


def test_checkpoint_tests_are_marl_evals_and_are_made_once(runs, capsys):
    read = load_runs([runs])
    tested = with_checkpoint_tests(read, 6, (0.0, 0.3), seed=5)
    by_name = {r.folder: r for r in tested}
    for name in ("qmix_seed1", "qmix_seed2"):
        tests = by_name[name].tests
        assert [(t.episodes, t.epsilon, t.seed) for t in tests] == [(6, 0.0, 5), (6, 0.3, 5)]
        for t in tests:
            assert t.value == _marl_eval(runs / name, 6, 5, t.epsilon, capsys)
    # a policy-gradient learner has no ε: it is tested once, as marl eval tests it
    (ippo,) = by_name["ippo_seed1"].tests
    assert (ippo.episodes, ippo.epsilon, ippo.seed) == (6, None, 5)
    assert ippo.value == _marl_eval(runs / "ippo_seed1", 6, 5, None, capsys)
    # a test a run already has is not made again; a new one is added beside it
    assert with_checkpoint_tests(tested, 6, (0.0, 0.3), seed=5) == tested
    again = with_checkpoint_tests(tested, 4, (0.0,), seed=5)
    assert [len(r.tests) for r in again] == [len(r.tests) + 1 for r in tested]


def test_tests_are_tabled_and_kept_in_runs_json(runs, tmp_path, capsys):
    pytest.importorskip("rliable.library")
    assert main([str(runs), "--out", str(tmp_path / "a"), "--reps", "50",
                 "--test-episodes", "6", "--test-epsilon", "0", "0.3"]) == 0
    capsys.readouterr()
    text = (tmp_path / "a" / "report.md").read_text()
    assert "Final checkpoints tested after training" in text
    table = [line for line in text.splitlines()
             if line.startswith(f"| {ENV} |") and "(seed 0)" in line]
    assert [line.split(" | ")[1:4] for line in table] == [
        ["ippo", "6 (seed 0)", "– (none)"], ["qmix", "6 (seed 0)", "0"],
        ["qmix", "6 (seed 0)", "0.3"]]
    figures = json.loads((tmp_path / "a" / "report.json").read_text())
    greedy, _ = figures["tests"][ENV]["qmix"]
    values = [_marl_eval(runs / f"qmix_seed{s}", 6, 0, 0.0, capsys) for s in (1, 2)]
    assert greedy["seeds"] == [1, 2] and greedy["values"] == values
    assert greedy["mean"] == pytest.approx(sum(values) / 2)

    # the runs.json keeps the tests: a later report tables them without the run folders
    kept = load_runs([tmp_path / "a" / "runs.json"])
    assert {r.folder: r.tests for r in kept}["qmix_seed2"] == (
        CheckpointTest(6, 0.0, 0, values[1]), CheckpointTest(6, 0.3, 0, kept[-1].tests[1].value))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every test asked for is there: nothing to say
        assert with_checkpoint_tests(kept, 6, (0.0, 0.3)) == kept
    with pytest.warns(UntestedRun, match="its checkpoint is not here"):
        assert with_checkpoint_tests(kept, 6, (0.05,)) == kept
    write_report(kept, tmp_path / "b", reps=50)
    assert ((tmp_path / "b" / "report.md").read_text().split("## Aggregate")[0]
            == text.split("## Aggregate")[0])


@pytest.mark.parametrize(("argv", "says"), [
    (["--test-epsilon", "0.05"], "--test-epsilon needs --test-episodes"),
    (["--test-episodes", "4", "--test-epsilon", "1.5"], "test ε 1.5"),
    (["--test-episodes", "0"], "--test-episodes"),
])
def test_bad_test_options_are_refused_before_anything_is_written(runs, tmp_path, capsys, argv,
                                                                 says):
    try:
        code = main([str(runs), "--out", str(tmp_path / "out"), *argv])
    except SystemExit as exit_:  # argparse refuses a bad number itself
        code = exit_.code
    assert code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
