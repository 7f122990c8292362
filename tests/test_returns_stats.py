"""TD(λ) targets against a per-episode loop, running statistics, masked mean, schedules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marl.returns import td_lambda_targets
from marl.schedules import LinearSchedule
from marl.stats import RunningMeanStd, masked_mean

B, T = 6, 9
LAMBDAS = [0.0, 0.5, 0.9, 1.0]


def padded_batch(k: int, reward_k: int, seed: int, terminate: bool = True):
    """Random padded episodes: rewards ``[B, T, reward_k]``, values ``[B, T, k]``.

    Padded steps hold garbage (the mask alone must exclude them); termination only at an
    episode's last step.
    """
    gen = torch.Generator().manual_seed(seed)
    length = torch.randint(1, T + 1, (B,), generator=gen)
    length[0] = T  # one full-length episode
    length[1] = 1  # one single-step episode
    mask = (torch.arange(T)[None, :] < length[:, None]).unsqueeze(-1)  # [B, T, 1]
    terminated = torch.zeros(B, T, 1, dtype=torch.bool)
    if terminate:
        last = torch.rand(B, generator=gen) < 0.5
        last[0] = True
        terminated[torch.arange(B), length - 1, 0] = last
    rewards = torch.randn(B, T, reward_k, generator=gen, dtype=torch.float64)
    values = torch.randn(B, T, k, generator=gen, dtype=torch.float64)
    return rewards, terminated, mask, values, length


def reference(rewards, terminated, values, length, gamma: float, lam: float) -> torch.Tensor:
    """G_t = r_t + γ(1-d_t)[(1-λ)V_{t+1} + λ G_{t+1}], G_{t+1} := V_{t+1} at the last step."""
    b, _, k = values.shape
    out = torch.zeros(b, T, k, dtype=torch.float64)
    for i in range(b):
        n = int(length[i])
        for j in range(k):
            r = [float(rewards[i, t, j if rewards.shape[-1] > 1 else 0]) for t in range(n)]
            d = [bool(terminated[i, t, 0]) for t in range(n)]
            v = [float(values[i, t, j]) for t in range(n)]
            g = 0.0
            for t in reversed(range(n)):
                blend = v[t] if t == n - 1 else (1 - lam) * v[t] + lam * g
                g = r[t] + gamma * (1.0 - d[t]) * blend
                out[i, t, j] = g
    return out


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("lam", LAMBDAS)
def test_td_lambda_matches_loop(lam: float, k: int) -> None:
    for seed in range(5):
        rewards, terminated, mask, values, length = padded_batch(k, k, seed)
        got = td_lambda_targets(rewards, terminated, mask, values, 0.97, lam)
        want = reference(rewards, terminated, values, length, 0.97, lam)
        assert got.shape == (B, T, k)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        assert not got[~mask.expand_as(got)].any()  # padded steps are zero


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_td_lambda_team_reward_broadcasts_over_agent_values(lam: float) -> None:
    """QLearner with no mixer passes one team reward ``[B, T, 1]`` and values ``[B, T, N]``."""
    rewards, terminated, mask, values, length = padded_batch(3, 1, seed=11)
    got = td_lambda_targets(rewards, terminated, mask, values, 0.9, lam)
    want = reference(rewards, terminated, values, length, 0.9, lam)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", [1, 3])
def test_lambda_one_is_discounted_return_plus_bootstrap(k: int) -> None:
    gamma = 0.9
    rewards, terminated, mask, values, length = padded_batch(k, k, seed=20, terminate=False)
    got = td_lambda_targets(rewards, terminated, mask, values, gamma, 1.0)
    for i in range(B):
        n = int(length[i])
        for t in range(n):
            discounts = gamma ** torch.arange(n - t, dtype=torch.float64)
            ret = (discounts[:, None] * rewards[i, t:n]).sum(0)
            want = ret + gamma ** (n - t) * values[i, n - 1]
            torch.testing.assert_close(got[i, t], want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", [1, 3])
def test_lambda_zero_is_one_step(k: int) -> None:
    gamma = 0.95
    rewards, terminated, mask, values, _ = padded_batch(k, k, seed=21)
    got = td_lambda_targets(rewards, terminated, mask, values, gamma, 0.0)
    want = (rewards + gamma * (~terminated).double() * values) * mask
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_terminated_last_step_is_reward_only() -> None:
    rewards = torch.tensor([[[1.0], [2.0], [3.0]]])
    terminated = torch.tensor([[[False], [False], [True]]])
    mask = torch.ones(1, 3, 1, dtype=torch.bool)
    values = torch.full((1, 3, 1), 100.0)
    got = td_lambda_targets(rewards, terminated, mask, values, 0.5, 1.0)
    torch.testing.assert_close(got.flatten(), torch.tensor([1 + 0.5 * 2 + 0.25 * 3, 2 + 1.5, 3.0]))


@pytest.mark.parametrize("shape", [(), (3,)])
def test_running_mean_std_matches_numpy(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    stats = RunningMeanStd(shape)
    chunks = []
    for size, lead in [(200, ()), (1, ()), (37, (4,)), (0, ()), (1500, ()), (60, (5, 2))]:
        data = rng.normal(1.5, 2.0, size=(size, *lead, *shape))
        chunks.append(data.reshape(-1, *shape))
        stats.update(torch.from_numpy(data))
    seen = np.concatenate(chunks)
    np.testing.assert_allclose(stats.mean.numpy(), seen.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.var.numpy(), seen.var(0), rtol=1e-6)
    assert stats.mean.shape == shape and stats.var.shape == shape
    assert float(stats.count) == pytest.approx(seen.shape[0] + 1e-4)


def test_running_mean_std_standardise() -> None:
    stats = RunningMeanStd((2,))
    stats.update(torch.randn(500, 2, generator=torch.Generator().manual_seed(1)) * 3 + 4)
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(2))
    for eps in (1e-8, 0.5):
        got = stats.standardise(x, eps)
        assert got.dtype == torch.float32
        want = (x.double() - stats.mean) / torch.sqrt(stats.var + eps)
        torch.testing.assert_close(got, want.float())


def test_running_mean_std_state_round_trip() -> None:
    a = RunningMeanStd()
    a.update(torch.arange(10.0))
    b = RunningMeanStd()
    b.load_state_dict(a.state_dict())
    b.update(torch.ones(3))
    a.update(torch.ones(3))
    assert torch.equal(a.mean, b.mean) and torch.equal(a.var, b.var)
    assert torch.equal(a.count, b.count)


def test_masked_mean() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 5, 3, generator=gen)
    mask = torch.rand(4, 5, 1, generator=gen) < 0.5
    mask[0, 0] = True
    got = masked_mean(x, mask)
    want = x[mask.expand_as(x)].mean()
    torch.testing.assert_close(got, want)
    full = masked_mean(x, torch.ones(4, 5, 3, dtype=torch.bool))
    torch.testing.assert_close(full, x.mean())
    assert float(masked_mean(x, torch.zeros(4, 5, 1, dtype=torch.bool))) == 0.0
    grad_x = x.clone().requires_grad_()
    masked_mean(grad_x, mask).backward()
    assert torch.equal(grad_x.grad != 0, mask.expand_as(x))


def test_linear_schedule() -> None:
    s = LinearSchedule(1.0, 0.05, 100)
    assert s(0) == 1.0
    assert s(100) == pytest.approx(0.05)
    assert s(50) == pytest.approx(0.525)
    assert s(25) == pytest.approx(1.0 - 0.25 * 0.95)
    assert s(101) == pytest.approx(0.05) and s(10**9) == pytest.approx(0.05)
    assert s(-5) == 1.0
    values = [s(t) for t in range(0, 120, 7)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    up = LinearSchedule(0.0, 2.0, 10)
    assert up(5) == pytest.approx(1.0) and up(20) == pytest.approx(2.0)
    assert LinearSchedule(1.0, 0.05, 0)(0) == 0.05
    assert LinearSchedule(1.0, 0.05, 0)(1000) == 0.05


def test_running_mean_std_mask_equals_selecting():
    g = torch.Generator().manual_seed(5)
    x, mask = torch.randn(6, 9, generator=g), torch.rand(6, 9, generator=g) < 0.4
    masked, selected = RunningMeanStd(), RunningMeanStd()
    masked.update(x, mask)
    masked.update(x, torch.zeros_like(mask))  # an empty batch changes nothing
    selected.update(x[mask])
    for a, b in ((masked.mean, selected.mean), (masked.var, selected.var),
                 (masked.count, selected.count)):
        torch.testing.assert_close(a, b)
