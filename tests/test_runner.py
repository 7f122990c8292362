"""The runner stores exactly the episodes the environment played, across autoresets."""

from __future__ import annotations

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


def test_evaluate_counts_each_copys_first_episode():
    env = make("lbf:5x5-2p-1f", num_envs=4, max_episode_steps=6)
    learner = QLearner(env.spec, QLearnerConfig(hidden_dim=8), device="cpu", seed=0)
    result = evaluate(env, learner, episodes=10, seed=1)  # three waves: 4 + 4 + 2
    assert result["return"].shape == (10,) and result["length"].shape == (10,)
    assert (result["length"] >= 1).all() and (result["length"] <= 6).all()
    again = evaluate(env, learner, episodes=10, seed=1)
    assert torch.equal(result["return"], again["return"])
