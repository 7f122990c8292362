"""MANSA: the CL budget always holds, calls are counted exactly, a zero budget gives IQL
exactly, a free CL may be called everywhere, the switchers learn, configs are checked."""

from __future__ import annotations

import pytest
import torch

from marl.algos.mixers import VDNMixer
from marl.algos.switcher import DQNSwitcher, PPOSwitcher, SwitchRollout, decision_logp
from marl.config import ConfigError, load_config
from marl.sweep import scalar_curve
from marl.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ("batch_size=8", "buffer_size=2000", "il.hidden_dim=16", "cl.hidden_dim=16",
         "il.epsilon_anneal_time=2000", "cl.epsilon_anneal_time=2000", "switcher_rollout=16")


def trainer(tmp_path, steps: int, *overrides: str, algo: str = "mansa", name: str = "run",
            small: tuple[str, ...] = SMALL, tensorboard: bool = False) -> Trainer:
    cfg = load_config(algo, "lbf:5x5-2p-1f", flags=dict(
        steps=steps, num_envs=8, seed=4, progress=False, tensorboard=tensorboard,
        test_interval=0, log_interval=200,
        test_episodes=8, runs_dir=str(tmp_path), name=name), overrides=(*small, *overrides))
    return Trainer(cfg)


def recorded_calls(t: Trainer) -> tuple[torch.Tensor, int]:
    """Calls per stored episode, and all calls in the replay and in the episodes running."""
    replay = t.data.replay
    per_episode = replay.data["switch"][: replay.size].sum(1)
    running = int(t.runner.stage["switch"].sum())
    assert replay.episodes_written == replay.size, "the replay must hold every episode"
    return per_episode, int(per_episode.sum()) + running


@pytest.mark.parametrize("switcher", ["random", *(pytest.param(s, marks=pytest.mark.slow)
                                                  for s in ("ppo", "dqn"))])
def test_the_budget_is_never_exceeded_and_calls_are_counted_exactly(tmp_path, switcher):
    # a switcher that wants CL everywhere (random at rate 1; PPO and DQN with a free CL)
    t = trainer(tmp_path, 4000, f"switcher={switcher}", "random_rate=1.0", "switch_cost=0.0",
                "switcher_epsilon=1.0", "budget_episode=3", "budget_run=300")
    summary = t.run()
    per_episode, total = recorded_calls(t)
    assert per_episode.max() <= 3
    assert total == summary["cl_calls"] == int(t.learner.calls_total) <= 300
    if switcher == "random":  # it takes every call it may: the run budget is spent exactly
        assert total == 300 and t.learner.budget_left() == 0


def test_the_episode_budget_alone_holds_per_episode(tmp_path):
    t = trainer(tmp_path, 2000, "switcher=random", "random_rate=1.0", "budget_episode=2")
    t.run()
    per_episode, total = recorded_calls(t)
    lengths = t.data.replay.data["length"][: t.data.replay.size]
    assert torch.equal(per_episode, lengths.clamp(max=2))  # every allowed call, no more
    assert total == int(t.learner.calls_total)


@pytest.mark.slow
def test_a_zero_budget_never_calls_cl_and_is_iql_exactly(tmp_path):
    il = ("il.hidden_dim=16", "il.epsilon_anneal_time=2000", "batch_size=8",
          "buffer_size=2000")
    mansa = trainer(tmp_path, 3000, "budget_run=0", name="mansa", small=il)
    summary = mansa.run()
    assert summary["cl_calls"] == 0 and summary["cl_fraction"] == 0.0
    iql = trainer(tmp_path, 3000, "hidden_dim=16", "epsilon_anneal_time=2000", "batch_size=8",
                  "buffer_size=2000", algo="iql", name="iql", small=())
    reference = iql.run()
    assert summary["updates"] == reference["updates"] > 0
    assert summary["test_return_mean"] == reference["test_return_mean"]
    for (name, a), b in zip(mansa.learner.il.agent.state_dict().items(),
                            iql.learner.agent.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_free_cl_with_no_budget_may_be_called_everywhere(tmp_path):
    t = trainer(tmp_path, 1000, "switcher=random", "random_rate=1.0", "switch_cost=0.0",
                "budget_run=5000", tensorboard=True)
    assert t.run()["cl_fraction"] == 1.0
    for tag, value in (("explore/cl_fraction", 1.0), ("explore/cl_budget_left", 4000.0),
                       ("explore/cl_calls_total", 1000.0)):
        assert scalar_curve(t.run_dir, tag)[-1] == (1000, value), tag
    for tag in ("learner/cl_calls_per_episode", "learner/switcher_entropy", "learner/cl_loss",
                "learner/loss", "test/return_mean"):
        assert scalar_curve(t.run_dir, tag), tag
    ppo = trainer(tmp_path, 1000, "switch_cost=0.0", name="ppo")
    assert 0.3 < ppo.run()["cl_fraction"] < 0.7  # an untrained PPO switcher: a coin flip


def rollout(switcher, seed: int, cost: float = 0.2) -> SwitchRollout:
    """One-step switcher experience, decisions drawn from ``switcher``: a call costs ``cost``
    and pays 1 exactly when the first feature is positive."""
    g = torch.Generator().manual_seed(seed)
    steps, copies = 64, 32
    r = SwitchRollout.empty(steps, copies, 3, torch.device("cpu"))
    r.feats = torch.randn(steps, copies, 3, generator=g)
    r.next_feats = torch.randn(steps, copies, 3, generator=g)
    r.allowed[:] = True
    r.next_allowed[:] = True
    with torch.no_grad():
        p = switcher.probability(r.feats, r.allowed)
    r.switch = torch.rand(steps, copies, generator=g) < p
    r.logp = decision_logp(p, r.switch)
    r.reward = ((r.feats[..., 0] > 0) & r.switch).float() - cost * r.switch
    r.terminated[:] = True  # one-step problems
    r.done[:] = True
    r.filled = steps
    return r


def test_ppo_and_dqn_switchers_learn_where_a_call_pays():
    torch.manual_seed(0)
    ppo = PPOSwitcher(3, 32, lr=0.01, epochs=4, clip=0.2, entropy_coef=0.0, gamma=0.99,
                      gae_lambda=0.95, grad_norm_clip=10.0)
    dqn = DQNSwitcher(3, 32, lr=0.01, epochs=4, gamma=0.99, epsilon=0.5, target_tau=0.5,
                      grad_norm_clip=10.0)
    for i in range(40):
        ppo.learn(rollout(ppo, seed=i))
        dqn.learn(rollout(dqn, seed=100 + i))
    dqn.epsilon = 0.0
    probe = torch.tensor([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])
    allowed = torch.ones(2, dtype=torch.bool)
    for switcher in (ppo, dqn):
        p = switcher.probability(probe, allowed)
        assert p[0] > 0.8 and p[1] < 0.2, type(switcher).__name__
        assert switcher.probability(probe, ~allowed).eq(0).all()  # a forbidden call: never


def test_vdn_as_the_centralised_learner(tmp_path):
    t = trainer(tmp_path, 600, "cl.mixer=vdn", "switch_cost=0.0")
    summary = t.run()
    assert summary["cl_calls"] > 0 and summary["updates"] > 0
    cl = t.learner.cl  # its team value is the agents' sum: no hypernetwork, no state value
    assert isinstance(cl.mixer, VDNMixer) and not list(cl.mixer.parameters())
    q = torch.randn(4, 5, t.learner.spec.n_agents)
    state = torch.randn(4, 5, *t.learner.spec.state_shape)
    torch.testing.assert_close(cl.mixer(q, state), q.sum(-1, keepdim=True))


@pytest.mark.parametrize(("override", "key"), [("il.mixer=qmix", "il.mixer"),
                                               ("cl.mixer=none", "cl.mixer"),
                                               ("switcher=oracle", "switcher"),
                                               ("budget_run=-2", "budget_run"),
                                               ("switch_cost=-1", "switch_cost")])
def test_config_errors_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        load_config("mansa", "lbf:5x5-2p-1f", overrides=(override,))
