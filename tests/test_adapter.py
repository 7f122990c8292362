"""ParallelVecEnv: spec, tensors, dead agents, same-step autoreset, validation, workers."""

from __future__ import annotations

import functools

import gymnasium
import numpy as np
import pytest
import torch
from pettingzoo import ParallelEnv

from marl.envs.adapter import ParallelVecEnv
from marl.spec import VecEnv

LBF_ID = "Foraging-8x8-2p-3f-v3"


class Toy(ParallelEnv):
    """Two agents with dict observations carrying an action mask (agent_1 may not play 2).

    agent_1 dies after 2 steps; the episode is truncated after 4, or terminated at once when
    agent_0 plays 2. Observation of agent i at step t: (seed of the last seeded reset + t, i).
    The reward of an agent is the action it played.
    """

    metadata = {"name": "toy"}
    possible_agents = ["agent_0", "agent_1"]
    episode_limit = 4

    def __init__(self) -> None:
        mask = gymnasium.spaces.MultiBinary(3)
        box = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self._obs_space = gymnasium.spaces.Dict({"observation": box, "action_mask": mask})
        self._action_space = gymnasium.spaces.Discrete(3)
        self.base, self.received = 0, []

    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._obs_space

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._action_space

    def _obs(self) -> dict:
        return {
            a: {
                "observation": np.array([self.base + self.t, i], np.float32),
                "action_mask": np.array([1, 1, i == 0], np.int8),
            }
            for i, a in enumerate(self.possible_agents)
            if a in self.agents
        }

    def reset(self, seed=None, options=None):
        self.base = self.base if seed is None else seed
        self.t = 0
        self.agents = self.possible_agents[:]
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        self.received.append(dict(actions))
        self.t += 1
        end = actions.get("agent_0") == 2
        term = {a: end or (a == "agent_1" and self.t >= 2) for a in self.agents}
        trunc = {a: not term[a] and self.t >= 4 for a in self.agents}
        obs, rewards = self._obs(), {a: float(actions[a]) for a in self.agents}
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rewards, term, trunc, infos


class ToyWithState(Toy):
    state_space = gymnasium.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    def state(self) -> np.ndarray:
        return np.array([10 * self.t], np.float32)


def test_spec_shapes_and_first_observation() -> None:
    env = ParallelVecEnv(Toy, num_envs=2)
    assert isinstance(env, VecEnv)
    s = env.spec
    assert (s.n_agents, s.obs_shape, s.n_actions, s.episode_limit) == (2, (2,), 3, 4)
    assert s.state_shape == (4,)  # no state_space: both agents' observations side by side
    assert s.agent_names == ("agent_0", "agent_1") and s.action_names == ()
    obs = env.reset(seed=10)
    assert obs.obs.dtype == torch.float32 and obs.obs.shape == (2, 2, 2)
    assert obs.obs[:, :, 0].tolist() == [[10, 10], [11, 11]]  # copy i is seeded seed + i
    assert obs.state.tolist() == [[10, 0, 10, 1], [11, 0, 11, 1]]
    assert obs.avail.dtype == torch.bool
    assert obs.avail.tolist() == [[[True, True, True], [True, True, False]]] * 2
    assert ParallelVecEnv(Toy, episode_limit=7).spec.episode_limit == 7


def test_state_space_is_used_when_present() -> None:
    env = ParallelVecEnv(ToyWithState, num_envs=2)
    assert env.spec.state_shape == (1,)
    env.reset(seed=0)
    assert env.step(torch.zeros(2, 2, dtype=torch.long)).obs.state.tolist() == [[10.0], [10.0]]


def test_dead_agents_autoreset_and_final_obs() -> None:
    env = ParallelVecEnv(Toy, num_envs=2)
    env.reset(seed=10)
    step = env.step(torch.tensor([[0, 1], [1, 1]]))
    assert step.reward.tolist() == [[0, 1], [1, 1]]
    step = env.step(torch.tensor([[1, 0], [2, 0]]))  # agent_1 dies; copy 1 ends (agent_0 plays 2)
    assert step.terminated.tolist() == [False, True] and step.truncated.tolist() == [False, False]
    assert step.final_obs.obs[1, :, 0].tolist() == [13, 13]  # reached at t=2 by copy 1
    assert step.obs.obs[1, :, 0].tolist() == [11, 11]  # the new episode (t=0)
    assert step.obs.obs[0].tolist() == step.final_obs.obs[0].tolist()

    step = env.step(torch.tensor([[1, 0], [0, 0]]))  # agent_1 of copy 0 is dead now
    assert step.obs.obs[0].tolist() == [[13, 0], [0, 0]]
    assert step.obs.avail[0].tolist() == [[True, True, True], [True, False, False]]
    assert step.reward[0].tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"copy 0, agent 1 \(agent_1\): action 1 is not available"):
        env.step(torch.tensor([[0, 1], [0, 0]]))

    step = env.step(torch.tensor([[0, 0], [0, 0]]))  # copy 0 reaches the time limit
    # agent_1 died (terminated) earlier, but the episode ended on the limit: a truncation
    assert step.terminated.tolist() == [False, False] and step.truncated.tolist() == [True, False]
    assert step.final_obs.obs[0].tolist() == [[14, 0], [0, 0]]
    assert step.obs.obs[0].tolist() == [[10, 0], [10, 1]]
    assert step.done.tolist() == [True, False]


def test_validation_names_copy_agent_action_and_can_be_switched_off() -> None:
    env = ParallelVecEnv(Toy, num_envs=2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(torch.zeros(2, 2, dtype=torch.long))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"copy 1, agent 1 \(agent_1\): action 2 is not avail"):
        env.step(torch.tensor([[0, 0], [0, 2]]))
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(2, 3, dtype=torch.long))

    loose = ParallelVecEnv(Toy, num_envs=2, validate=False)
    loose.reset(seed=0)
    loose.step(torch.tensor([[0, 0], [0, 2]]))
    assert loose._local.envs[1].received == [{"agent_0": 0, "agent_1": 2}]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="workers"):
        ParallelVecEnv(Toy, workers="threads")
    with pytest.raises(ValueError, match="num_workers"):
        ParallelVecEnv(Toy, num_envs=2, num_workers=2)
    with pytest.raises(ValueError, match="num_envs"):
        ParallelVecEnv(Toy, num_envs=0)
    with pytest.raises(ValueError, match="picklable"):
        ParallelVecEnv(lambda: Toy(), workers="subprocess")

    class NoLimit(Toy):
        episode_limit = None

    with pytest.raises(ValueError, match="episode_limit="):
        ParallelVecEnv(NoLimit)


def sample_available(avail: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b, n, k = avail.shape
    return torch.multinomial(avail.view(-1, k).float(), 1, generator=g).view(b, n)


@pytest.mark.slow
def test_subprocess_matches_inprocess_and_reports_a_dead_worker() -> None:
    pytest.importorskip("lbforaging")
    from marl.envs.lbforaging_ref import LBForagingParallelEnv

    env_fn = functools.partial(LBForagingParallelEnv, LBF_ID)
    local = ParallelVecEnv(env_fn, num_envs=4)
    with ParallelVecEnv(env_fn, num_envs=4, workers="subprocess", num_workers=2) as remote:
        assert remote.spec == local.spec
        a, b = local.reset(seed=3), remote.reset(seed=3)
        assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("obs", "state", "avail"))
        g = torch.Generator().manual_seed(0)
        resets = 0
        for _ in range(200):
            actions = sample_available(local.last_obs.avail, g)
            x, y = local.step(actions), remote.step(actions)
            for k in ("reward", "terminated", "truncated"):
                assert torch.equal(getattr(x, k), getattr(y, k))
            for ox, oy in ((x.obs, y.obs), (x.final_obs, y.final_obs)):
                assert all(torch.equal(getattr(ox, k), getattr(oy, k)) for k in vars(ox))
            done = x.done.nonzero().squeeze(1)
            resets += done.numel()
            if done.numel():  # a new episode, with the finished one kept in final_obs
                assert not torch.equal(x.obs.state[done], x.final_obs.state[done])
        assert resets >= 4  # 50-step episodes: every copy restarted

        remote._procs[1].kill()
        with pytest.raises(RuntimeError, match=r"worker 1 \(copies 2..3\) died during 'step'"):
            remote.step(sample_available(remote.last_obs.avail, g))
    assert not any(p.is_alive() for p in remote._procs)
    with pytest.raises(RuntimeError, match="after close"):
        remote.reset()


@pytest.mark.slow
def test_a_failing_factory_raises_with_the_worker_traceback() -> None:
    pytest.importorskip("lbforaging")
    from marl.envs.lbforaging_ref import LBForagingParallelEnv

    bad = functools.partial(LBForagingParallelEnv, LBF_ID, max_episode_step=5)
    failed = r"(?s)worker 0 \(copies 0..0\) raised during 'start'.*'max_episode_step'"
    with pytest.raises(RuntimeError, match=failed):
        ParallelVecEnv(bad, workers="subprocess")
