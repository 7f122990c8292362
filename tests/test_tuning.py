"""Tuned configurations: a sweep's configurations ranked by their mean over seeds, and the
winner written as a config file that trains with exactly the values that won."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marl.cli import main
from marl.config import load_config, overrides_yaml
from marl.sweep import Job, TrialResult
from marl.sweep_spec import config_digest
from marl.tuning import portable_command, rank_configurations

FIXED = ("test_interval=250",)


def result(config: tuple[str, ...], seed: int, value: float | None,
           algo: str = "qmix") -> TrialResult:
    job = Job(f"{algo}_{'_'.join(config)}_seed{seed}", algo, "lbf:5x5-2p-1f", seed, 100, 4,
              (*FIXED, *config))
    if value is None:
        return TrialResult(job, "failed", error="boom")
    return TrialResult(job, "done", {"test_return_mean": value})


def test_configurations_rank_by_mean_over_seeds_and_incomplete_ones_last():
    a, b, c = ("lr=0.001",), ("lr=0.0005",), ("lr=0.0001",)
    results = [result(a, 1, 0.5), result(a, 2, 0.9),  # mean 0.7
               result(b, 1, 0.8), result(b, 2, 0.8),  # mean 0.8
               result(c, 1, 1.0), result(c, 2, None),  # best seed, but one failed
               result(a, 1, 0.1, algo="vdn")]
    ranked = rank_configurations(results, FIXED, "test_return_mean", "max")
    qmix = ranked[("qmix", "lbf:5x5-2p-1f")]
    assert [s.configuration for s in qmix] == [b, a, c]
    assert qmix[0].mean == pytest.approx(0.8) and qmix[1].values == (0.5, 0.9)
    assert qmix[0].complete and not qmix[2].complete and qmix[2].values == (1.0,)
    assert qmix[0].num_envs == 4 and qmix[0].runs == ("qmix_lr=0.0005_seed1",
                                                      "qmix_lr=0.0005_seed2")
    assert [s.configuration for s in ranked[("vdn", "lbf:5x5-2p-1f")]] == [a]
    low_first = rank_configurations(results, FIXED, "test_return_mean", "min")
    assert [s.configuration for s in low_first[("qmix", "lbf:5x5-2p-1f")]] == [a, b, c]
    with pytest.raises(ValueError, match="fixed ones"):
        rank_configurations(results, ("test_interval=500",), "test_return_mean", "max")


def test_overrides_as_a_config_file_load_back_as_the_same_config(tmp_path):
    overrides = ("lr=0.0003", "target_tau=0.01", "use_rnn=true", "num_envs=16",
                 "buffer_size=1000", "env_args.penalty=0.1")
    path = tmp_path / "tuned.yaml"
    path.write_text(overrides_yaml("qmix", "lbf:8x8-2p-3f", overrides))
    assert (load_config("qmix", "lbf:8x8-2p-3f", files=(path,))
            == load_config("qmix", "lbf:8x8-2p-3f", overrides=overrides))
    with pytest.raises(ValueError, match="lrr"):
        overrides_yaml("qmix", "lbf:8x8-2p-3f", ("lrr=0.1",))


def test_a_sweep_writes_its_winner_as_a_config_file_that_trains_with_it(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)  # the command in the file: paths under here, relative
    runs, tuned = tmp_path / "runs", tmp_path / "tuned"
    args = ["sweep", "--backend", "local", "--algos", "iql", "--envs", "lbf:5x5-2p-1f",
            "--seeds", "1", "2", "--steps", "400", "--num-envs", "2", "--runs-dir", str(runs),
            "--concurrent", "2", "--report", str(tmp_path / "report"), "--tuned-dir", str(tuned),
            "test_interval=200", "test_episodes=4"]
    spec = tmp_path / "sweep.yaml"
    spec.write_text("search:\n  lr: {grid: [0.0001, 0.01]}\n  hidden_dim: {grid: [16]}\n")
    assert main([args[0], str(spec), *args[1:]]) == 0
    out = capsys.readouterr().out
    assert "iql on lbf:5x5-2p-1f: configurations by mean test_return_mean" in out
    means: dict[float, list[float]] = {}
    for folder in (p for p in runs.iterdir() if p.is_dir()):
        lr = load_config("iql", "lbf:5x5-2p-1f", files=(folder / "config.yaml",)).learner.lr
        summary = json.loads((folder / "summary.json").read_text())
        means.setdefault(lr, []).append(summary["test_return_mean"])
    assert sorted(len(v) for v in means.values()) == [2, 2]
    file = tuned / "iql_lbf-5x5-2p-1f.yaml"
    text = file.read_text()
    assert text.startswith("# Tuned iql on lbf:5x5-2p-1f")
    assert "Chosen by: marl sweep sweep.yaml --backend local" in text
    assert "--runs-dir runs " in text and str(tmp_path) not in text
    cfg = load_config("iql", "lbf:5x5-2p-1f", files=(file,))
    assert cfg.num_envs == 2 and cfg.learner.hidden_dim == 16
    assert sum(means[cfg.learner.lr]) == max(sum(v) for v in means.values())  # (ties: any)
    # the report keeps the configurations apart (same seeds): one algorithm each
    names = {f"iql ({config_digest((f'lr={lr}', 'hidden_dim=16'))})" for lr in (0.0001, 0.01)}
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert set(report["algorithms"]) == names
    assert all(f"{config_digest((f'lr={lr}', 'hidden_dim=16'))}  lr={lr} hidden_dim=16" in out
               for lr in (0.0001, 0.01))


def test_tuned_dir_without_a_search_is_refused(tmp_path, capsys):
    assert main(["sweep", "--backend", "local", "--algos", "iql", "--envs", "lbf:5x5-2p-1f",
                 "--runs-dir", str(tmp_path / "runs"), "--tuned-dir", str(tmp_path)]) == 2
    assert "no search" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_tuned_dir_over_config_files_is_refused(tmp_path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text("learner:\n  hidden_dim: 16\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"algos: [iql]\nenvs: ['lbf:5x5-2p-1f']\nconfigs: ['{base}']\n"
                     "search:\n  lr: {grid: [0.001, 0.01]}\n")
    assert main(["sweep", str(sweep), "--backend", "local", "--runs-dir",
                 str(tmp_path / "runs"), "--tuned-dir", str(tmp_path)]) == 2
    assert "a sweep over config files would leave theirs out" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_recorded_command_names_shipped_files_as_the_repository_does(tmp_path):
    from importlib import resources

    shipped = Path(str(resources.files("marl.configs"))) / "sweeps" / "tune_value_lbf.yaml"
    argv = ["sweep", str(shipped), "--runs-dir", str(tmp_path / "runs"), "--tuned-dir",
            "/elsewhere/tuned", "lr=0.001", "--algos", "qmix"]
    assert portable_command(argv, cwd=tmp_path) == (
        "marl sweep configs/sweeps/tune_value_lbf.yaml --runs-dir runs --tuned-dir "
        "/elsewhere/tuned lr=0.001 --algos qmix")


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "configs" / "tuned")
                                        .glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shipped_tuned_configs_load_and_say_where_they_came_from(path: Path) -> None:
    algo, env = path.stem.split("_", 1)
    env = env.replace("-", ":", 1)
    cfg = load_config(algo, env, files=(path,))
    assert cfg.algo == algo and cfg.env == env
    text = path.read_text()
    assert text.startswith(f"# Tuned {algo} on {env}:")
    assert "Chosen by: marl sweep configs/sweeps/" in text
