"""Run configs: shipped EPyMARL defaults, layering, errors, dict and YAML round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from marl.config import ConfigError, TrainConfig, from_dict, load_config, to_dict, to_yaml

ENV = "lbf:8x8-2p-3f"


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(*args, **kwargs)
    return str(err.value)


def test_qmix_defaults_are_epymarl() -> None:
    cfg = load_config("qmix", ENV)
    assert isinstance(cfg, TrainConfig)
    assert (cfg.algo, cfg.env) == ("qmix", ENV)
    lc = cfg.learner
    assert lc.mixer == "qmix"
    assert lc.lr == 0.0005
    assert lc.hidden_dim == 64
    assert lc.use_rnn is False
    assert lc.epsilon_start == 1.0 and lc.epsilon_finish == 0.05
    assert lc.epsilon_anneal_time == 50000
    assert cfg.replay.batch_size == 32 and cfg.replay.buffer_size == 5000
    assert cfg.replay.updates_per_episode == 1.0 and cfg.replay.device == ""
    assert lc.target_update_interval == 200
    assert lc.double_q is True and lc.standardise_rewards is True
    assert lc.mixing_embed_dim == 32 and lc.hypernet_embed == 64 and lc.hypernet_layers == 2
    assert lc.gamma == 0.99 and lc.td_lambda == 0.0 and lc.grad_norm_clip == 10.0


def test_iql_defaults_are_epymarl() -> None:
    lc = load_config("iql", ENV).learner
    assert lc.mixer == "none"
    assert lc.lr == 0.0003
    assert lc.hidden_dim == 128
    assert lc.use_rnn is True
    assert lc.epsilon_anneal_time == 200000
    assert lc.double_q is True


def test_vdn_defaults() -> None:
    lc = load_config("vdn", ENV).learner
    assert lc.mixer == "vdn"
    assert lc.lr == 0.0005 and lc.hidden_dim == 64 and lc.use_rnn is False


@pytest.mark.parametrize("algo", ["qmix", "iql", "vdn"])
def test_lbf_schedule(algo: str) -> None:
    cfg = load_config(algo, ENV)
    assert cfg.steps == 2050000
    assert cfg.test_interval == 50000
    assert cfg.test_episodes == 100
    assert cfg.env_args == {}


def test_layering_order(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "steps: 111\nseed: 5\ntest_episodes: 7\nlog_interval: 3\n"
        "learner:\n  lr: 0.01\n  hidden_dim: 32\nreplay:\n  batch_size: 8\n"
    ))
    cfg = load_config(
        "qmix", ENV, files=(path,),
        flags={"seed": 6, "test_episodes": 8, "steps": None, "num_envs": 4},
        overrides=("test_episodes=9", "learner.hidden_dim=16", "num_envs=2"),
    )
    assert cfg.steps == 111  # file over env YAML (flag None leaves it)
    assert cfg.log_interval == 3  # file over env YAML
    assert cfg.seed == 6  # flag over file
    assert cfg.test_episodes == 9  # override over flag over file
    assert cfg.num_envs == 2  # override over flag
    assert cfg.learner.lr == 0.01 and cfg.replay.batch_size == 8  # file over algo YAML
    assert cfg.learner.hidden_dim == 16  # override over file
    assert cfg.learner.mixer == "qmix" and cfg.replay.buffer_size == 5000  # untouched
    assert cfg.test_interval == 50000


def test_later_files_override_earlier(tmp_path: Path) -> None:
    a = write(tmp_path, "seed: 1\nsteps: 10\n", "a.yaml")
    b = write(tmp_path, "seed: 2\n", "b.yaml")
    cfg = load_config("vdn", ENV, files=(a, b))
    assert (cfg.seed, cfg.steps) == (2, 10)


def test_bare_learner_keys_and_env_args(tmp_path: Path) -> None:
    cfg = load_config("iql", ENV, overrides=("lr=0.01", "gamma=0.5", "env_args.penalty=0.1",
                                             "env_args.sight=2"))
    assert cfg.learner.lr == 0.01 and cfg.learner.gamma == 0.5
    assert cfg.env_args == {"penalty": 0.1, "sight": 2}
    path = write(tmp_path, "env_args:\n  coop: true\n")
    cfg = load_config("iql", ENV, files=(path,), overrides=("env_args.sight=3",))
    assert cfg.env_args == {"coop": True, "sight": 3}


def test_misspelt_key_suggests_closest() -> None:
    msg = config_error("qmix", ENV, overrides=("lrr=0.01",))
    assert "'lrr'" in msg and "Did you mean 'lr'" in msg
    msg = config_error("qmix", ENV, overrides=("stepz=3",))
    assert "'stepz'" in msg and "Did you mean 'steps'" in msg
    msg = config_error("qmix", ENV, overrides=("learner.hiden_dim=3",))
    assert "hiden_dim" in msg and "Did you mean 'hidden_dim'" in msg


def test_wrong_type() -> None:
    msg = config_error("qmix", ENV, overrides=("steps=abc",))
    assert "steps" in msg and "abc" in msg and "Integer" in msg
    msg = config_error("qmix", ENV, flags={"steps": "abc"})
    assert "command line" in msg and "steps" in msg and "abc" in msg


def test_out_of_range_values() -> None:
    msg = config_error("qmix", ENV, overrides=("gamma=1.5",))
    assert "gamma" in msg and "1.5" in msg and "[0, 1]" in msg
    msg = config_error("qmix", ENV, overrides=("mixer=foo",))
    assert "mixer" in msg and "foo" in msg
    for name in ("none", "vdn", "qmix"):
        assert name in msg
    msg = config_error("qmix", ENV, overrides=("steps=0",))
    assert "steps" in msg and ">= 1" in msg
    msg = config_error("qmix", ENV, overrides=("hypernet_layers=3",))
    assert "hypernet_layers" in msg and "1 or 2" in msg
    msg = config_error("qmix", ENV, flags={"device": "tpu"})
    assert "device" in msg and "tpu" in msg and "cuda" in msg


def test_unknown_key_in_file_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "learner:\n  lrr: 0.1\n", "mine.yaml")
    msg = config_error("qmix", ENV, files=(path,))
    assert str(path) in msg and "lrr" in msg and "Did you mean 'lr'" in msg
    path = write(tmp_path, "seeed: 3\n", "top.yaml")
    msg = config_error("qmix", ENV, files=(path,))
    assert str(path) in msg and "Did you mean 'seed'" in msg


def test_bad_value_in_file_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "learner:\n  gamma: 2.0\n", "gamma.yaml")
    msg = config_error("qmix", ENV, files=(path,))
    assert str(path) in msg and "gamma" in msg and "2.0" in msg


def test_invalid_yaml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "steps: [1, 2\nseed: 3\n", "broken.yaml")
    msg = config_error("qmix", ENV, files=(path,))
    assert str(path) in msg and "YAML" in msg
    path = write(tmp_path, "- 1\n- 2\n", "list.yaml")
    msg = config_error("qmix", ENV, files=(path,))
    assert str(path) in msg and "mapping" in msg


def test_missing_file_and_bad_override_form(tmp_path: Path) -> None:
    msg = config_error("qmix", ENV, files=(tmp_path / "nope.yaml",))
    assert "nope.yaml" in msg
    msg = config_error("qmix", ENV, overrides=("steps",))
    assert "key=value" in msg


def test_unknown_algorithm_suggests_closest() -> None:
    msg = config_error("qmx", ENV)
    assert "'qmx'" in msg and "Did you mean 'qmix'" in msg
    assert "iql" in msg and "vdn" in msg


def test_algo_and_env_fixed_by_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, "algo: vdn\n")
    msg = config_error("qmix", ENV, files=(path,))
    assert "algo" in msg and "vdn" in msg


def test_dict_round_trip() -> None:
    cfg = load_config("iql", ENV, overrides=("lr=0.002", "env_args.penalty=0.25", "seed=9"))
    data = to_dict(cfg)
    assert isinstance(data, dict) and isinstance(data["learner"], dict)
    assert data["learner"]["lr"] == 0.002 and data["env_args"] == {"penalty": 0.25}
    back = from_dict(data)
    assert back == cfg
    assert to_dict(back) == data
    yaml.safe_dump(data)  # YAML-safe values only


def test_from_dict_rejects_unknown_key() -> None:
    data = to_dict(load_config("qmix", ENV))
    data["learner"]["lrr"] = 1.0
    with pytest.raises(ConfigError, match="lrr"):
        from_dict(data)


@pytest.mark.parametrize("algo", ["qmix", "iql", "vdn"])
def test_yaml_round_trip(tmp_path: Path, algo: str) -> None:
    cfg = load_config(algo, ENV, overrides=("steps=1234", "lr=0.004", "env_args.sight=2",
                                            "name=run one", "td_lambda=0.6"))
    text = to_yaml(cfg)
    parsed = yaml.safe_load(text)
    assert parsed == to_dict(cfg)
    path = write(tmp_path, text, "saved.yaml")
    assert load_config(algo, ENV, files=(path,)) == cfg


def test_value_rules_run_on_the_final_config():
    """Two overrides that are only valid together are accepted in either order."""
    cfg = load_config("qmix", "lbf:8x8-2p-3f", overrides=("batch_size=6000", "buffer_size=9000"))
    assert (cfg.replay.batch_size, cfg.replay.buffer_size) == (6000, 9000)
    with pytest.raises(ConfigError, match=r"buffer_size=5000 .* at least batch_size \(6000\)"):
        load_config("qmix", "lbf:8x8-2p-3f", overrides=("batch_size=6000",))
