"""The runner stores exactly the episodes the environment played, across autoresets."""

from __future__ import annotations

import pytest
import torch

from marl.algos.qlearner import QLearner, QLearnerConfig
from marl.envs import make
from marl.replay import EpisodeReplay
from marl.runner import EpisodeRunner, evaluate


class Recorder:
    """Wraps a VecEnv and keeps every step's tensors."""

    def __init__(self, env):
        self.env, self.steps = env, []
        self.spec, self.num_envs, self.device = env.spec, env.num_envs, env.device

    def reset(self, *, seed=None):
        self.first = self.env.reset(seed=seed)
        return self.first

    def step(self, actions):
        step = self.env.step(actions)
        self.steps.append((actions.clone(), step))
        return step


def played_episodes(rec: Recorder) -> list[dict]:
    """Episodes per copy in the order they finished, rebuilt from the recorded steps."""
    b = rec.num_envs
    current = [{"obs": [rec.first.obs[i]], "actions": [], "reward": [], "term": []}
               for i in range(b)]
    done_order = []
    for actions, step in rec.steps:
        for i in range(b):
            ep = current[i]
            ep["actions"].append(actions[i])
            ep["reward"].append(step.reward[i])
            ep["term"].append(bool(step.terminated[i]))
            ep["obs"].append(step.final_obs.obs[i])
        for i in range(b):
            if step.done[i]:
                done_order.append(current[i])
                current[i] = {"obs": [step.obs.obs[i]], "actions": [], "reward": [],
                              "term": []}
    return done_order


def test_replay_holds_the_played_episodes():
    env = Recorder(make("lbf:5x5-2p-1f", num_envs=5, max_episode_steps=12))
    learner = QLearner(env.spec, QLearnerConfig(hidden_dim=8), device="cpu", seed=0)
    replay = EpisodeReplay(learner.replay_fields(), 64, env.spec.episode_limit)
    runner = EpisodeRunner(env, learner, replay, torch.device("cpu"))
    runner.start(seed=4)
    finished = runner.collect(40, t_env=0)  # ε = 1: random play, many episodes
    episodes = played_episodes(env)
    assert finished == len(episodes) == replay.episodes_written > 10
    stored = replay.gather(torch.arange(len(episodes)))
    for k, ep in enumerate(episodes):
        n = len(ep["actions"])
        assert int(stored["length"][k]) == n
        assert torch.equal(stored["obs"][k, : n + 1], torch.stack(ep["obs"]))
        assert torch.equal(stored["actions"][k, :n], torch.stack(ep["actions"]))
        assert torch.equal(stored["reward"][k, :n], torch.stack(ep["reward"]))
        assert stored["terminated"][k, :n].tolist() == ep["term"]
        assert not stored["obs"][k, n + 1:].any() and not stored["actions"][k, n:].any()
    stats = runner.take_stats()
    returns = [float(torch.stack(ep["reward"]).sum()) for ep in episodes]
    assert stats["episodes"] == len(episodes)
    assert abs(stats["return_mean"] - sum(returns) / len(returns)) < 1e-5
    assert runner.take_stats() == {}


class RandomPolicy:
    """Uniform over the available actions, from its own generator: two built with one seed
    and asked the same questions give the same actions (``evaluate`` needs only
    ``initial_memory``, ``seed_test`` and ``act``)."""

    def __init__(self, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def initial_memory(self, batch: int) -> dict:
        return {}

    def seed_test(self, seed: int) -> None:
        """Tests draw on from the one generator."""

    def act(self, obs, memory, *, explore: bool, t_env: int = 0):
        scores = torch.rand(obs.avail.shape, generator=self.gen)
        return scores.masked_fill(~obs.avail, -1.0).argmax(-1), memory, {}


def test_an_epsilon_greedy_test_is_a_function_of_the_policy_and_its_seed():
    env = make("lbf:5x5-2p-2f", num_envs=8)
    spec = env.spec
    learner = QLearner(spec, QLearnerConfig(evaluation_epsilon=0.3), device="cpu", seed=0)
    first = evaluate(env, learner, episodes=16, seed=7)
    evaluate(env, learner, episodes=16, seed=8)  # draws in between change nothing
    learner.act(env.reset(seed=0), learner.initial_memory(8), explore=True)
    again = evaluate(env, learner, episodes=16, seed=7)
    assert torch.equal(first["length"], again["length"])
    assert torch.equal(first["return"], again["return"])
    learner.test_epsilon = 0.0  # the same policy tested greedily plays other episodes
    greedy = evaluate(env, learner, episodes=16, seed=7)
    assert not torch.equal(greedy["length"], first["length"])


def test_evaluate_counts_each_copys_first_episode():
    env = make("lbf:4x4-2p-2f", num_envs=4, max_episode_steps=10)
    result = evaluate(env, RandomPolicy(1), episodes=10, seed=4)  # three waves: 4 + 4 + 2
    # by hand: wave w resets with seed 4 + w and steps all copies until each has finished an
    # episode; a copy's first episode is its steps up to its first done
    policy, returns, lengths, after_first = RandomPolicy(1), [], [], []
    for wave in range(3):
        obs = env.reset(seed=4 + wave)
        rewards, dones = [], []
        while not (dones and torch.stack(dones).any(0).all()):
            actions, _, _ = policy.act(obs, {}, explore=False)
            step = env.step(actions)
            rewards.append(step.reward.sum(-1))
            dones.append(step.done)
            obs = step.obs
        for i in range(env.num_envs):
            end = [bool(d[i]) for d in dones].index(True) + 1
            lengths.append(end)
            returns.append(float(sum(r[i] for r in rewards[:end])))
            after_first.append(float(sum(r[i].abs() for r in rewards[end:])))
    assert set(result) == {"return", "length"}  # LBF has no win flag
    assert result["length"].tolist() == lengths[:10]
    assert result["return"].tolist() == pytest.approx(returns[:10], abs=1e-6)
    # the check has teeth: episodes of different lengths, some rewarded, and reward that
    # copies earned in their second episodes while others were still in their first
    assert 1 < len(set(lengths[:10])) and 0 < sum(returns[:10]) and 0 < sum(after_first[:10])
