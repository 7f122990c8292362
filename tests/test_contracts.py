"""The seams the next algorithms build on: the learner contracts, the algorithm registry,
configs that state only what differs, and environment versions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import yaml

from marl import algorithms as registry
from marl.algorithms import Algorithm, get_algorithm, register_algorithm
from marl.checkpoint import CheckpointError
from marl.config import ConfigError, TrainConfig, config_file, learner_defaults, load_config
from marl.envs import registry as env_registry
from marl.learner import Policy, ReplayLearner, RolloutLearner
from marl.replay import EpisodeBatch, Field
from marl.spec import EnvSpec, Obs, Step
from marl.train import build_learner, train

ENV = "lbf:5x5-2p-1f"


@dataclass
class CountingConfig:
    """A learner that acts uniformly at random and counts what it is shown."""

    scale: float = 1.0


class CountingLearner:
    """A new replay learner, written only against :mod:`marl.learner`: it records a field of
    its own (the step's index in its episode) and counts observed steps and updates."""

    def __init__(self, spec: EnvSpec, cfg: CountingConfig, device: torch.device,
                 seed: int) -> None:
        self.spec, self.device = spec, device
        self.rng = torch.Generator().manual_seed(seed)
        self.observed = torch.zeros((), dtype=torch.long)
        self.updates = 0

    def replay_fields(self) -> dict[str, Field]:
        s = self.spec
        return {"obs": Field((s.n_agents, *s.obs_shape), torch.float32, per_state=True),
                "state": Field(tuple(s.state_shape), torch.float32, per_state=True),
                "avail": Field((s.n_agents, s.n_actions), torch.bool, per_state=True),
                "actions": Field((s.n_agents,), torch.long),
                "reward": Field((s.n_agents,), torch.float32),
                "terminated": Field((), torch.bool),
                "index": Field((), torch.long)}

    def initial_memory(self, batch: int) -> dict[str, Any]:
        return {"t": torch.zeros(batch, dtype=torch.long)}

    def reset_memory(self, memory: dict[str, Any], done: torch.Tensor) -> dict[str, Any]:
        return {"t": memory["t"] * ~done}

    def act(self, obs: Obs, memory: dict[str, Any], *, explore: bool,
            t_env: int = 0) -> tuple[torch.Tensor, dict[str, Any], dict[str, torch.Tensor]]:
        scores = torch.rand(obs.avail.shape, generator=self.rng).masked_fill(~obs.avail, -1)
        return scores.argmax(-1), {"t": memory["t"] + 1}, {"index": memory["t"]}

    def observe(self, step: Step) -> None:
        self.observed += step.done.numel()

    def update(self, batch: EpisodeBatch) -> dict[str, torch.Tensor]:
        self.updates += 1
        # the recorded field is the step index: 0, 1, 2, ... wherever the episode has a step
        steps = torch.arange(batch["index"].shape[1]).expand_as(batch["index"])
        assert torch.equal(batch["index"] * batch["filled"], steps * batch["filled"])
        return {"loss": torch.tensor(0.0)}

    def seed_test(self, seed: int) -> None:
        """Tests draw on from the one generator."""

    def exploration(self, t_env: int) -> dict[str, float]:
        return {}

    def summary(self) -> dict[str, float]:
        return {"observed_steps": int(self.observed), "learner_updates": self.updates}

    def state_dict(self) -> dict[str, Any]:
        return {"observed": self.observed, "updates": self.updates,
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.observed, self.updates = state["observed"], state["updates"]
        self.rng.set_state(state["rng"])


@pytest.fixture
def counting_algorithm(monkeypatch):
    monkeypatch.setattr(registry, "_ALGOS", dict(registry.algorithms()))
    register_algorithm(Algorithm("counting", "a test learner", CountingConfig,
                                 CountingLearner))


def test_a_new_learner_trains_through_the_unchanged_trainer(tmp_path, counting_algorithm):
    cfg = load_config("counting", ENV, flags=dict(
        steps=400, num_envs=4, progress=False, tensorboard=False, runs_dir=str(tmp_path),
        name="new", test_interval=0, test_episodes=2), overrides=("batch_size=4",))
    summary = train(cfg)
    assert summary["observed_steps"] == 400
    assert summary["learner_updates"] == summary["updates"] > 0
    resumed = train(None, resume=tmp_path / "new", flags={"steps": 600})
    assert resumed["observed_steps"] == 600


def test_the_builtin_learners_follow_their_contracts():
    spec = EnvSpec(2, (5,), (7,), 4, 10, ("a", "b"))
    kinds = {"iql": ReplayLearner, "vdn": ReplayLearner, "qmix": ReplayLearner,
             "mansa": ReplayLearner, "ippo": RolloutLearner, "mappo": RolloutLearner}
    for name, kind in kinds.items():
        cfg = load_config(name, ENV)
        learner = build_learner(cfg, spec, torch.device("cpu"))
        assert isinstance(learner, kind) and isinstance(learner, Policy), name
        assert get_algorithm(name).on_policy == (kind is RolloutLearner)


def test_memory_and_exploration_have_no_side_effects():
    spec = EnvSpec(2, (5,), (7,), 4, 10, ("a", "b"))
    learner = build_learner(load_config("mansa", ENV), spec, torch.device("cpu"))
    memory = learner.initial_memory(3)
    obs = Obs(torch.randn(3, 2, 5), torch.randn(3, 7), torch.ones(3, 2, 4, dtype=torch.bool))
    _, memory, record = learner.act(obs, memory, explore=True)
    assert set(record) == {"switch"} and record["switch"].shape == (3,)
    before = {k: v.clone() for k, v in learner.window.items()}
    first = learner.exploration(100)
    learner.reset_memory(memory, torch.tensor([True, False, True]))
    assert learner.exploration(100) == first
    for key, value in learner.window.items():
        assert torch.equal(value, before[key]), key


def test_the_switcher_learns_in_update_not_in_act():
    spec = EnvSpec(2, (5,), (7,), 4, 10, ("a", "b"))
    cfg = load_config("mansa", ENV, overrides=("switcher_rollout=2", "switch_cost=0.0"))
    learner = build_learner(cfg, spec, torch.device("cpu"))
    obs = Obs(torch.randn(3, 2, 5), torch.randn(3, 7), torch.ones(3, 2, 4, dtype=torch.bool))
    memory = learner.initial_memory(3)
    weights = {k: v.clone() for k, v in learner.switcher.state_dict().items()}
    for _ in range(5):
        actions, memory, _ = learner.act(obs, memory, explore=True)
        learner.observe(Step(obs, torch.ones(3, 2), torch.zeros(3, dtype=torch.bool),
                             torch.zeros(3, dtype=torch.bool), obs))
    for key, value in learner.switcher.state_dict().items():
        assert torch.equal(value, weights[key]), f"{key} changed while acting"
    assert learner.rollout.filled == 5
    batch = EpisodeBatch()
    t = 3
    batch.update(obs=torch.randn(4, t + 1, 2, 5), state=torch.randn(4, t + 1, 7),
                 avail=torch.ones(4, t + 1, 2, 4, dtype=torch.bool),
                 actions=torch.zeros(4, t, 2, dtype=torch.long), reward=torch.zeros(4, t, 2),
                 terminated=torch.zeros(4, t, dtype=torch.bool),
                 switch=torch.zeros(4, t, dtype=torch.bool),
                 filled=torch.ones(4, t, dtype=torch.bool), length=torch.full((4,), t))
    metrics = learner.update(batch)
    assert "switcher_policy_loss" in metrics and learner.rollout.filled == 0
    assert any(not torch.equal(v, weights[k]) for k, v in learner.switcher.state_dict().items())


# --- one source of truth for what an algorithm is -------------------------------------------
@pytest.mark.parametrize("algo, override, instead", [
    ("iql", "mixer=qmix", "--algo qmix"), ("qmix", "mixer=none", "--algo iql"),
    ("vdn", "learner.mixer=qmix", "--algo qmix"), ("ippo", "critic=state", "--algo mappo"),
    ("mappo", "critic=obs", "--algo ippo")])
def test_what_defines_an_algorithm_cannot_be_overridden(algo, override, instead):
    with pytest.raises(ConfigError, match=f"is what makes it {algo}; use {instead}"):
        load_config(algo, ENV, overrides=(override,))


@pytest.mark.parametrize("algo", ["iql", "vdn", "qmix", "ippo", "mappo", "mansa"])
def test_algorithm_files_hold_only_what_differs_from_the_defaults(algo):
    data = yaml.safe_load(config_file("algos", algo).read_text()) or {}
    defaults = dataclasses.asdict(TrainConfig(learner=get_algorithm(algo).config()))

    def same(node: dict, base: dict, where: str) -> list[str]:
        out = []
        for key, value in node.items():
            if isinstance(value, dict):
                out += same(value, base[key], f"{where}{key}.")
            elif base[key] == value:
                out.append(f"{where}{key}")
        return out

    assert same(data, defaults, "") == []


def test_mansa_learners_are_the_registered_iql_and_qmix():
    cfg = load_config("mansa", ENV).learner
    assert cfg.il == learner_defaults("iql") == load_config("iql", ENV).learner
    assert cfg.cl == learner_defaults("qmix") == load_config("qmix", ENV).learner


@pytest.mark.slow  # a subprocess
def test_the_config_layer_does_not_import_the_plugins(tmp_path):
    import subprocess
    import sys

    code = ("import sys, marl.config, marl.algorithms; "
            "print(any(m.startswith(('marl.algos', 'marl.envs')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)  # the installed package, not the sources
    assert out.stdout.strip() == "False"


# --- environment versions -------------------------------------------------------------
def test_runs_record_the_environment_version_and_refuse_another(tmp_path, monkeypatch):
    cfg = load_config("qmix", ENV, flags=dict(steps=100, num_envs=2, progress=False,
                                              tensorboard=False, runs_dir=str(tmp_path),
                                              name="v", test_interval=0, test_episodes=2))
    train(cfg)
    assert "env_version: lbf-v1" in (tmp_path / "v" / "config.yaml").read_text()
    families = dict(env_registry._FAMILIES)
    families["lbf"] = dataclasses.replace(families["lbf"], version=2)
    monkeypatch.setattr(env_registry, "_FAMILIES", families)
    assert env_registry.env_version(ENV) == "lbf-v2"
    with pytest.raises(CheckpointError, match="version lbf-v1; this marl has lbf-v2"):
        train(None, resume=tmp_path / "v", flags={"steps": 200})
    with pytest.raises(ConfigError, match="env_version"):
        train(load_config("qmix", ENV, flags=dict(runs_dir=str(tmp_path), name="w"),
                          overrides=("env_version=lbf-v1",)))


# --- validation without a host sync per step --------------------------------------------
@pytest.mark.parametrize("mode, during, after", [("first", True, False),
                                                 ("always", True, True),
                                                 ("never", False, False)])
def test_actions_are_checked_while_the_first_episodes_run(tmp_path, mode, during, after):
    from marl.train import Trainer

    cfg = load_config("qmix", ENV, flags=dict(
        steps=400, num_envs=2, progress=False, tensorboard=False, runs_dir=str(tmp_path),
        name=mode, test_interval=0, test_episodes=2), overrides=(f"validate_actions={mode}",))
    trainer = Trainer(cfg)
    assert trainer.env.validate is during and trainer.test_env.validate is during
    trainer.run()  # the episode limit is 50 steps: 100 env steps of 2 copies
    assert trainer.env.validate is after and trainer.test_env.validate is after
