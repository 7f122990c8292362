"""PPO learner (IPPO / MAPPO): GAE, recurrent replay of rollouts, critic inputs, the update."""

from __future__ import annotations

import pytest
import torch

from marl.algos.ppo import PPOConfig, PPOLearner
from marl.config import ConfigError
from marl.envs import make
from marl.nets import AgentNet, ConvEncoder
from marl.returns import gae, nstep_returns
from marl.rollout import RolloutBuffer
from marl.runner import RolloutRunner
from marl.spec import Obs

pytestmark = pytest.mark.usefixtures("one_thread")

ENV = "lbf:5x5-2p-1f"


def gae_reference(rewards, values, next_values, terminated, done, gamma, lam):
    """GAE one number at a time, straight from the definition."""
    t_len, b_len, n_len = rewards.shape
    adv = torch.zeros(t_len, b_len, n_len, dtype=torch.float64)
    for b in range(b_len):
        for n in range(n_len):
            running = 0.0
            for t in reversed(range(t_len)):
                boot = 0.0 if terminated[t, b] else float(next_values[t, b, n])
                delta = float(rewards[t, b, n]) + gamma * boot - float(values[t, b, n])
                if done[t, b]:
                    running = 0.0
                running = delta + gamma * lam * running
                adv[t, b, n] = running
    return adv


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_gae_matches_loop_reference(lam):
    g = torch.Generator().manual_seed(0)
    t, b, n = 9, 6, 3
    rewards = torch.randn(t, b, n, generator=g, dtype=torch.float64)
    values = torch.randn(t, b, n, generator=g, dtype=torch.float64)
    next_values = torch.randn(t, b, n, generator=g, dtype=torch.float64)
    terminated = torch.rand(t, b, generator=g) < 0.15
    truncated = torch.rand(t, b, generator=g) < 0.15
    done = terminated | truncated
    adv, ret = gae(rewards, values, next_values, terminated.unsqueeze(-1), done.unsqueeze(-1),
                   0.97, lam)
    ref = gae_reference(rewards, values, next_values, terminated, done, 0.97, lam)
    torch.testing.assert_close(adv, ref)
    torch.testing.assert_close(ret, ref + values)
    assert terminated.any() and (truncated & ~terminated).any()


def test_gae_truncation_bootstraps_and_termination_does_not():
    rewards = torch.ones(1, 2, 1)
    values = torch.zeros(1, 2, 1)
    next_values = torch.full((1, 2, 1), 10.0)
    terminated = torch.tensor([[True, False]])
    done = torch.tensor([[True, True]])  # copy 0 terminated, copy 1 truncated
    adv, _ = gae(rewards, values, next_values, terminated.unsqueeze(-1), done.unsqueeze(-1),
                 0.5, 0.9)
    assert adv.flatten().tolist() == [1.0, 6.0]


def nstep_reference(rewards, values, next_values, terminated, done, gamma, n):
    """n-step returns one number at a time: sum rewards until n steps, the episode's end or
    the rollout's end, then bootstrap."""
    t_len, b_len, n_len = rewards.shape
    out = torch.zeros(t_len, b_len, n_len, dtype=torch.float64)
    for b in range(b_len):
        for a in range(n_len):
            for t in range(t_len):
                g, k = 0.0, 0
                while True:
                    g += gamma**k * float(rewards[t + k, b, a])
                    if done[t + k, b]:
                        if not terminated[t + k, b]:
                            g += gamma ** (k + 1) * float(next_values[t + k, b, a])
                        break
                    k += 1
                    if k == n or t + k == t_len:
                        g += gamma**k * float(values[t + k, b, a])
                        break
                out[t, b, a] = g
    return out


@pytest.mark.parametrize("n", [1, 3, 5, 40])
def test_nstep_returns_match_loop_reference(n):
    g = torch.Generator().manual_seed(1)
    t, b, a = 11, 5, 2
    rewards = torch.randn(t, b, a, generator=g, dtype=torch.float64)
    values = torch.randn(t + 1, b, a, generator=g, dtype=torch.float64)
    final = torch.randn(t, b, a, generator=g, dtype=torch.float64)
    terminated = torch.rand(t, b, generator=g) < 0.1
    done = terminated | (torch.rand(t, b, generator=g) < 0.1)
    next_values = torch.where(done.unsqueeze(-1), final, values[1:])
    out = nstep_returns(rewards, values, next_values, terminated.unsqueeze(-1),
                        done.unsqueeze(-1), 0.9, n)
    torch.testing.assert_close(
        out, nstep_reference(rewards, values, next_values, terminated, done, 0.9, n))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("rnn", [True, False])
def test_unroll_equals_step_by_step_with_resets(shared, rnn):
    torch.manual_seed(0)
    net = AgentNet(5, 4, 3, hidden_dim=8, rnn=rnn, shared=shared)
    t, b, n = 7, 4, 3
    x = torch.randn(t, b, n, 5)
    memory0 = torch.randn(b, n, net.memory_dim)
    starts = torch.rand(t, b) < 0.3
    out = net.unroll(x, memory0, starts)
    for copy in range(b):  # one copy at a time, resetting by hand
        mem = memory0[copy : copy + 1]
        for i in range(t):
            if starts[i, copy]:
                mem = net.initial_memory(1)
            ref, mem = net(x[i, copy : copy + 1], mem)
            torch.testing.assert_close(out[i, copy], ref[0])


def _learner(algo_critic="state", **kw):
    env = make(ENV, num_envs=6)
    cfg = PPOConfig(critic=algo_critic, hidden_dim=16, critic_hidden_dim=16, **kw)
    return env, PPOLearner(env.spec, cfg, device="cpu", seed=3)


def _collect(env, learner, steps=7, rollouts=3):
    buffer = RolloutBuffer(learner.rollout_fields(), steps, env.num_envs)
    runner = RolloutRunner(env, learner, buffer, torch.device("cpu"))
    runner.start(seed=11)
    for i in range(rollouts):
        runner.collect(i * steps * env.num_envs)
    return buffer, runner


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("use_rnn", [True, False])
def test_rollout_replays_to_the_recorded_policy(use_rnn, shared):
    """Replaying the actor over the stored rollout (from the memory it began with, reset
    where episodes began, over any subset of copies) gives back the recorded log-probs."""
    env, learner = _learner(use_rnn=use_rnn, shared_params=shared)
    buffer, runner = _collect(env, learner, steps=23, rollouts=3)
    starts, done = buffer["starts"], buffer["done"]
    assert done.any() and (starts[1:] == done[:-1]).all()  # episodes cross the rollout
    for idx in (torch.arange(env.num_envs), torch.tensor([4, 1])):
        logits = learner.actor.unroll(learner._actor_inputs(buffer["obs"][:, idx]),
                                      buffer.start_memory["hidden"][idx], starts[:, idx])
        log_probs = learner._masked_log_probs(logits, buffer["avail"][:, idx])
        replayed = log_probs.gather(-1, buffer["actions"][:, idx].unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(replayed, buffer["log_prob"][:, idx])
    assert buffer["avail"].gather(-1, buffer["actions"].unsqueeze(-1)).all()
    # values: recorded on the acted observation; row T on the one the rollout stopped on
    torch.testing.assert_close(buffer["value"][buffer.steps], learner.value(runner.obs))
    torch.testing.assert_close(buffer["value"][3], learner.value(Obs(
        buffer["obs"][3], buffer["state"][3], buffer["avail"][3])))


def test_truncated_episodes_keep_the_value_of_their_final_observation():
    env, learner = _learner()
    buffer, _ = _collect(env, learner, steps=env.spec.episode_limit + 5, rollouts=1)
    truncated = buffer["done"] & ~buffer["terminated"]
    assert truncated.any()
    final = buffer["final_value"]
    assert (final[~truncated] == 0).all() and (final[truncated] != 0).all()
    # the final observation is not the reset one the next step acts on
    t, b = truncated.nonzero()[0].tolist()
    assert not torch.equal(final[t, b], buffer["value"][t + 1, b])


def _obs(g, spec, b):
    return Obs(torch.rand(b, spec.n_agents, *spec.obs_shape, generator=g),
               torch.rand(b, *spec.state_shape, generator=g),
               torch.ones(b, spec.n_agents, spec.n_actions, dtype=torch.bool))


@pytest.mark.parametrize("critic", ["state", "obs"])
def test_critic_sees_state_for_mappo_and_observation_for_ippo(critic):
    env, learner = _learner(critic)
    g = torch.Generator().manual_seed(0)
    base = _obs(g, env.spec, 5)
    other = _obs(g, env.spec, 5)
    new_state = Obs(base.obs, other.state, base.avail)
    new_obs = Obs(other.obs, base.state, base.avail)
    v = learner.value(base)
    changed, same = (new_state, new_obs) if critic == "state" else (new_obs, new_state)
    assert (learner.value(changed) - v).abs().min() > 0
    torch.testing.assert_close(learner.value(same), v)
    # with the agent id, agents seeing the same state get different values
    assert (v[:, 0] != v[:, 1]).all()


def test_first_minibatch_step_is_at_ratio_one():
    """With one epoch and one minibatch the policy has not moved yet: the ratio is 1, so the
    surrogate is -mean(advantage) and nothing is clipped; the value loss is mean(advantage²)
    (return targets minus the recorded values)."""
    env, learner = _learner(epochs=1, standardise_rewards=False, common_reward=False,
                            returns="gae")
    buffer, _ = _collect(env, learner)
    values = buffer["value"]
    done = buffer["done"].unsqueeze(-1)
    adv, _ = gae(buffer["reward"], values[:-1],
                 torch.where(done, buffer["final_value"], values[1:]),
                 buffer["terminated"].unsqueeze(-1), done, 0.99, 0.95)
    m = learner.update(buffer)
    torch.testing.assert_close(m["policy_loss"], -adv.mean())
    torch.testing.assert_close(m["value_loss"], adv.square().mean())
    assert m["clip_fraction"] == 0 and abs(float(m["approx_kl"])) < 1e-6


def test_nstep_advantage_uses_the_current_critic_and_target_critic_follows():
    """EPyMARL's targets: n-step returns from the target critic's values (recorded while
    acting); advantage = return - current critic value; then the target moves by τ."""
    env, learner = _learner(epochs=1, standardise_rewards=False, returns="nstep", nstep=3,
                            target_tau=0.25)
    with torch.no_grad():  # make the target critic differ from the online one
        for p in learner.target_critic.parameters():
            p.mul_(0.5)
    buffer, _ = _collect(env, learner)
    target_values = learner._critic(buffer["obs"], buffer["state"], target=True)
    torch.testing.assert_close(buffer["value"][:-1], target_values)
    values = buffer["value"]
    done = buffer["done"].unsqueeze(-1)
    reward = buffer["reward"].sum(-1, keepdim=True).expand_as(buffer["reward"])
    returns = nstep_returns(reward, values, torch.where(done, buffer["final_value"], values[1:]),
                            buffer["terminated"].unsqueeze(-1), done, 0.99, 3)
    with torch.no_grad():
        current = learner._critic(buffer["obs"], buffer["state"])
    old_target = [p.clone() for p in learner.target_critic.parameters()]
    m = learner.update(buffer)
    torch.testing.assert_close(m["policy_loss"], -(returns - current).mean())
    torch.testing.assert_close(m["value_loss"], (returns - current).square().mean())
    for old, new, online in zip(old_target, learner.target_critic.parameters(),
                                learner.critic.parameters(), strict=True):
        torch.testing.assert_close(new, old + 0.25 * (online - old))


def test_update_moves_the_policy_within_the_clip_and_anneals_lr():
    env, learner = _learner(epochs=4, num_minibatches=2, value_clip=0.2, value_norm=True,
                            returns="gae",
                            normalise_advantages=True, lr_anneal_steps=1000, lr=0.01)
    buffer, _ = _collect(env, learner)
    before = [p.clone() for p in learner.actor_params]
    buffer.t_env = 250
    m = learner.update(buffer)
    assert all(torch.isfinite(v) for v in m.values())
    assert float(m["approx_kl"]) > 0 and 0 < float(m["clip_fraction"]) < 0.5
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.actor_params, strict=True))
    assert float(m["lr"]) == pytest.approx(0.01 * 0.75)
    assert float(learner.value_stats.count) > 1


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="critic"):
        PPOConfig(critic="joint")
    with pytest.raises(ConfigError, match="gae_lambda"):
        PPOConfig(gae_lambda=1.5)
    with pytest.raises(ConfigError, match="value_clip.*returns=nstep"):
        PPOConfig(returns="nstep", value_clip=0.2)
    env = make(ENV)
    with pytest.raises(ConfigError, match="encoder='cnn' needs image observations"):
        PPOLearner(env.spec, PPOConfig(encoder="cnn"), device="cpu", seed=0)


def test_conv_encoder_per_agent_equals_shared_with_the_same_weights():
    torch.manual_seed(0)
    shared = ConvEncoder((3, 7, 5), 2, channels=4, out_dim=6, shared=True)
    per_agent = ConvEncoder((3, 7, 5), 2, channels=4, out_dim=6, shared=False)
    with torch.no_grad():
        for s, p in zip(shared.conv, per_agent.conv, strict=True):
            if isinstance(s, torch.nn.Conv2d):
                p.weight.copy_(s.weight.repeat(2, 1, 1, 1))
                p.bias.copy_(s.bias.repeat(2))
        per_agent.fc.weight.copy_(shared.fc.weight.T.expand(2, -1, -1))
        per_agent.fc.bias.copy_(shared.fc.bias.expand(2, -1))
    x = torch.randn(4, 5, 2, 3, 7, 5)
    out = shared(x)
    assert out.shape == (4, 5, 2, 6)
    torch.testing.assert_close(per_agent(x), out)
    assert not torch.equal(out[..., 0, :], out[..., 1, :])


def test_steps_a_curriculum_masks_do_not_teach():
    """Robust PLR: the policy and critic losses skip the steps ``RolloutBuffer.learn`` clears,
    so what happened in them (here: the actions taken) cannot change the update."""
    import copy

    env, learner = _learner()
    buffer, _ = _collect(env, learner, rollouts=1)
    buffer.learn[:, 2:] = False  # copies 2.. played only to be scored
    scrambled = copy.deepcopy(buffer)
    g = torch.Generator().manual_seed(0)
    scrambled["actions"][:, 2:] = torch.randint(0, env.spec.n_actions,
                                                scrambled["actions"][:, 2:].shape, generator=g)
    twin = copy.deepcopy(learner)
    learner.update(buffer)
    twin.update(scrambled)
    for a, b in zip(learner.actor.parameters(), twin.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    nothing = copy.deepcopy(buffer)
    nothing.learn.fill_(False)
    before = [p.clone() for p in twin.actor.parameters()]
    twin.update(nothing)
    for a, b in zip(before, twin.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b)
