"""The Q-learner's loss equals a plain, loop-by-loop reference of EPyMARL's update maths."""

from __future__ import annotations

import copy

import pytest
import torch

from marl.algos.qlearner import QLearner, QLearnerConfig
from marl.config import ConfigError
from marl.replay import EpisodeReplay
from marl.spec import EnvSpec

pytestmark = pytest.mark.usefixtures("one_thread")

N, A, D, S, T = 3, 4, 5, 6, 7
SPEC = EnvSpec(N, (D,), (S,), A, T, tuple(f"a{i}" for i in range(N)))


def random_batch(seed: int, episodes: int = 6):
    g = torch.Generator().manual_seed(seed)
    learner = QLearner(SPEC, QLearnerConfig(), device="cpu", seed=0)
    replay = EpisodeReplay(learner.replay_fields(), episodes, T)
    length = torch.randint(1, T + 1, (episodes,), generator=g)
    steps = torch.arange(T + 1)
    real = steps[None, :] <= length[:, None]  # per-state entries 0..length
    data = {
        "obs": torch.randn(episodes, T + 1, N, D, generator=g) * real[..., None, None],
        "state": torch.randn(episodes, T + 1, S, generator=g) * real[..., None],
        "avail": (torch.rand(episodes, T + 1, N, A, generator=g) < 0.7) & real[..., None, None],
        "actions": torch.randint(0, A, (episodes, T, N), generator=g) * real[:, :T, None],
        "reward": torch.rand(episodes, T, N, generator=g) * real[:, :T, None],
        "terminated": (steps[None, :T] == length[:, None] - 1)
        & (torch.rand(episodes, 1, generator=g) < 0.5),
        "length": length,
    }
    data["avail"][..., 0] |= real[..., None]  # at least one available action per real state
    replay.insert(data)
    return replay.gather(torch.arange(episodes))


def reference_mix(mixer, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """QMIX's mixing network written with bmm, one time step at a time."""
    out = []
    for t in range(q.shape[1]):
        s = state[:, t]
        w1 = mixer.hyper_w1(s).abs().view(-1, N, mixer.embed_dim)
        b1 = mixer.hyper_b1(s).view(-1, 1, mixer.embed_dim)
        hidden = torch.nn.functional.elu(torch.bmm(q[:, t].view(-1, 1, N), w1) + b1)
        w2 = mixer.hyper_w2(s).abs().view(-1, mixer.embed_dim, 1)
        out.append(torch.bmm(hidden, w2).view(-1, 1) + mixer.value(s))
    return torch.stack(out, dim=1)  # [B, L, 1]


def stepped(net, x: torch.Tensor) -> torch.Tensor:
    """``x [B, T, N, in]`` through the agent network one step at a time from zero memory."""
    memory, out = net.initial_memory(x.shape[0]), []
    for t in range(x.shape[1]):
        q, memory = net(x[:, t], memory)
        out.append(q)
    return torch.stack(out, dim=1)


def reference_loss(learner: QLearner, batch, gamma: float, double_q: bool) -> torch.Tensor:
    cfg = learner.cfg
    b, length = batch["length"].shape[0], batch["filled"].shape[1]
    reward = batch["reward"].sum(-1)
    if cfg.standardise_rewards:
        # running statistics start from a prior of mean 0, variance 1 with weight 1e-4
        r = reward[batch["filled"]].double()
        n, prior = r.numel(), 1e-4
        mean = r.mean() * n / (n + prior)
        var = (prior + r.var(unbiased=False) * n + r.mean() ** 2 * prior * n / (n + prior))
        var = var / (n + prior)
        reward = ((reward - mean) / torch.sqrt(var + 1e-8)).float()
    ids = torch.eye(N).expand(b, length + 1, N, N)
    x = torch.cat([batch["obs"], ids], dim=-1)
    q, tq = stepped(learner.agent, x), stepped(learner.target_agent, x)
    losses, count = torch.zeros(()), 0
    chosen = q[:, :-1].gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
    next_q = torch.zeros(b, length, N)
    for i in range(b):
        for t in range(length):
            for a in range(N):
                avail = batch["avail"][i, t + 1, a]
                if not avail.any():
                    continue
                online = q[i, t + 1, a].masked_fill(~avail, float("-inf"))
                target = tq[i, t + 1, a].masked_fill(~avail, float("-inf"))
                pick = online.argmax() if double_q else target.argmax()
                next_q[i, t, a] = tq[i, t + 1, a, pick]
    if learner.mixer is not None:
        mix = reference_mix if cfg.mixer == "qmix" else (lambda m, v, s: v.sum(-1, True))
        chosen = mix(learner.mixer, chosen, batch["state"][:, :-1])
        next_q = mix(learner.target_mixer, next_q, batch["state"][:, 1:])
    for i in range(b):
        for t in range(int(batch["length"][i])):
            done = bool(batch["terminated"][i, t])
            target = reward[i, t] + gamma * (0.0 if done else 1.0) * next_q[i, t].detach()
            losses = losses + ((chosen[i, t] - target) ** 2).sum()
            count += chosen.shape[-1]
    return losses / count


@pytest.mark.parametrize("mixer", ["none", "vdn", "qmix"])
@pytest.mark.parametrize("double_q", [True, False])
@pytest.mark.parametrize("use_rnn", [False, True], ids=["ff", "gru"])
def test_loss_equals_reference(mixer, double_q, use_rnn):
    cfg = QLearnerConfig(mixer=mixer, double_q=double_q, use_rnn=use_rnn, hidden_dim=8,
                         mixing_embed_dim=4, hypernet_embed=8)
    learner = QLearner(SPEC, cfg, device="cpu", seed=1)
    # a target network that differs from the online one, so double Q matters
    with torch.no_grad():
        for p in learner.target_agent.parameters():
            p.add_(0.3 * torch.randn_like(p))
    batch = random_batch(seed=2)
    before = copy.deepcopy(learner)
    got = learner.update(batch)["loss"]
    want = reference_loss(before, batch, cfg.gamma, double_q)
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6)
    # the update moved the online networks, not the target networks
    changed = any(not torch.equal(p, q) for p, q in
                  zip(learner.agent.parameters(), before.agent.parameters(), strict=True))
    assert changed
    for p, q in zip(learner.target_agent.parameters(), before.target_agent.parameters(),
                    strict=True):
        assert torch.equal(p, q)


def test_target_updates_hard_and_soft():
    batch = random_batch(seed=3)
    hard = QLearner(SPEC, QLearnerConfig(mixer="qmix", target_update_interval=2, hidden_dim=8),
                    device="cpu", seed=1)
    hard.update(batch)
    assert not all(torch.equal(p, q) for p, q in
                   zip(hard.agent.parameters(), hard.target_agent.parameters(), strict=True))
    hard.update(batch)  # second update: hard copy
    for p, q in zip(hard.agent.parameters(), hard.target_agent.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(hard.mixer.parameters(), hard.target_mixer.parameters(), strict=True):
        assert torch.equal(p, q)

    soft = QLearner(SPEC, QLearnerConfig(mixer="vdn", target_tau=0.25, hidden_dim=8),
                    device="cpu", seed=1)
    old_target = [p.clone() for p in soft.target_agent.parameters()]
    soft.update(batch)
    for t, old, p in zip(soft.target_agent.parameters(), old_target, soft.agent.parameters(),
                         strict=True):
        torch.testing.assert_close(t, old + 0.25 * (p - old))


def test_rmsprop_steps_as_pymarl_configures_it():
    """``optimizer=rmsprop`` (PyMARL's original QMIX): one update moves every parameter by
    RMSprop's first step, -lr * g / (sqrt((1 - alpha) * g^2) + eps), on the clipped gradient."""
    cfg = QLearnerConfig(mixer="qmix", optimizer="rmsprop", hidden_dim=8, mixing_embed_dim=4,
                         hypernet_embed=8)
    learner = QLearner(SPEC, cfg, device="cpu", seed=0)
    before = [p.detach().clone() for p in learner.params]
    learner.update(random_batch(seed=4))
    for old, p in zip(before, learner.params, strict=True):
        g = p.grad
        want = old - cfg.lr * g / ((1 - cfg.optim_alpha) * g.square()).sqrt().add(cfg.optim_eps)
        torch.testing.assert_close(p.detach(), want)
    with pytest.raises(ConfigError, match="optimizer='sgd'"):
        QLearnerConfig(optimizer="sgd")


def test_evaluation_epsilon_tests_from_its_own_stream():
    from marl.spec import Obs

    b = 2048
    avail = torch.rand(b, N, A, generator=torch.Generator().manual_seed(0)) < 0.5
    avail[..., 2] = True
    obs = Obs(torch.randn(b, N, D), torch.randn(b, S), avail)
    greedy_learner = QLearner(SPEC, QLearnerConfig(), device="cpu", seed=0)
    learner = QLearner(SPEC, QLearnerConfig(evaluation_epsilon=0.5), device="cpu", seed=0)
    memory = learner.initial_memory(b)
    greedy, _, _ = greedy_learner.act(obs, memory, explore=False)
    learner.seed_test(1)  # not avail's generator seed: its draws would match avail's
    train_rng, test_rng = learner.rng.get_state(), learner.test_rng.get_state()
    tested, _, _ = learner.act(obs, memory, explore=False)
    assert avail.gather(-1, tested.unsqueeze(-1)).all()
    # ε = 0.5 draws half the actions at random among those available: some equal the greedy one
    expected = 0.5 * (1 - (1 / avail.sum(-1).float())).mean()
    assert (tested != greedy).float().mean() == pytest.approx(float(expected), abs=0.02)
    assert torch.equal(learner.rng.get_state(), train_rng)  # training's draws are untouched
    assert not torch.equal(learner.test_rng.get_state(), test_rng)
    # a test is seeded: a copy of the learner seeded alike tests alike, whatever came before
    clone = QLearner(SPEC, QLearnerConfig(evaluation_epsilon=0.5), device="cpu", seed=9)
    clone.load_state_dict(learner.state_dict())
    learner.seed_test(5)
    clone.seed_test(5)
    again = clone.act(obs, memory, explore=False)[0]
    assert torch.equal(learner.act(obs, memory, explore=False)[0], again)
    clone.seed_test(6)
    assert not torch.equal(clone.act(obs, memory, explore=False)[0], again)
    # ε = 0 tests greedily and draws nothing
    greedy_learner.seed_test(0)
    plain = greedy_learner.test_rng.get_state()
    assert torch.equal(greedy_learner.act(obs, memory, explore=False)[0], greedy)
    assert torch.equal(greedy_learner.test_rng.get_state(), plain)
    with pytest.raises(ConfigError, match="evaluation_epsilon"):
        QLearnerConfig(evaluation_epsilon=1.5)


def test_act_respects_availability_and_epsilon():
    learner = QLearner(SPEC, QLearnerConfig(epsilon_anneal_time=100), device="cpu", seed=0)
    from marl.spec import Obs

    b = 512
    avail = torch.rand(b, N, A, generator=torch.Generator().manual_seed(0)) < 0.5
    avail[..., 2] = True
    obs = Obs(torch.randn(b, N, D), torch.randn(b, S), avail)
    memory = learner.initial_memory(b)
    for explore, t in ((True, 0), (True, 1000), (False, 0)):
        actions, _, _ = learner.act(obs, memory, explore=explore, t_env=t)
        assert avail.gather(-1, actions.unsqueeze(-1)).all()
    greedy, _, _ = learner.act(obs, memory, explore=False)
    random, _, _ = learner.act(obs, memory, explore=True, t_env=0)  # ε = 1
    late, _, _ = learner.act(obs, memory, explore=True, t_env=10_000)  # ε = 0.05
    assert (random != greedy).float().mean() > 0.3
    assert (late != greedy).float().mean() < 0.1
