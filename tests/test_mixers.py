"""Mixers: QMIX monotonicity and shapes, VDN sum, make_mixer names and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from marl.algos.mixers import MIXERS, QMixer, VDNMixer, make_mixer

B, T, N, S = 8, 5, 3, 7
LAYERS = pytest.mark.parametrize("layers", [1, 2])


pytestmark = pytest.mark.usefixtures("one_thread")


def random_mixer(layers: int, seed: int, state_dim: int = S) -> QMixer:
    torch.manual_seed(seed)
    mixer = QMixer(N, state_dim, embed_dim=8, hypernet_layers=layers, hypernet_embed=16)
    with torch.no_grad():  # spread the weights so negative hypernet outputs are common
        for p in mixer.parameters():
            p.mul_(3.0)
    return mixer.double()


@LAYERS
def test_qmix_monotonic_finite_increments(layers: int) -> None:
    gen = torch.Generator().manual_seed(100 + layers)
    scales = torch.tensor([1e-3, 0.1, 1.0, 10.0], dtype=torch.float64)
    for seed in range(20):
        mixer = random_mixer(layers, seed)
        state = torch.randn(B, T, S, generator=gen, dtype=torch.float64)
        q = 5 * torch.randn(B, T, N, generator=gen, dtype=torch.float64)
        # one batch of every (agent, scale) bump: bump[i, j, ..., i] = scales[j] * U(0, 1)
        size = scales[None, :, None, None] * torch.rand(
            N, len(scales), B, T, generator=gen, dtype=torch.float64
        )
        bump = torch.eye(N, dtype=torch.float64)[:, None, None, None, :] * size[..., None]
        states = state.expand(N, len(scales), B, T, S)
        with torch.no_grad():
            base = mixer(q, state)
            up = mixer(q + bump, states)
            down = mixer(q - bump, states)
        assert up.shape == (N, len(scales), B, T, 1)
        assert (up >= base).all(), seed
        assert (down <= base).all(), seed


@LAYERS
def test_qmix_gradient_non_negative(layers: int) -> None:
    gen = torch.Generator().manual_seed(200 + layers)
    for seed in range(20):
        mixer = random_mixer(layers, seed)
        state = torch.randn(B, T, S, generator=gen, dtype=torch.float64)
        q = (5 * torch.randn(B, T, N, generator=gen, dtype=torch.float64)).requires_grad_()
        mixer(q, state).sum().backward()  # each output depends on its own row of q only
        assert q.grad is not None
        assert (q.grad >= 0).all()
        assert (q.grad > 0).any()


@LAYERS
def test_qmix_shapes_and_rows_independent(layers: int) -> None:
    mixer = random_mixer(layers, 0)
    gen = torch.Generator().manual_seed(3)
    state = torch.randn(B, T, S, generator=gen, dtype=torch.float64)
    q = torch.randn(B, T, N, generator=gen, dtype=torch.float64)
    out = mixer(q, state)
    assert out.shape == (B, T, 1)
    changed = q.clone()
    changed[2, 3] += 1.0
    diff = (mixer(changed, state) != out).squeeze(-1)
    assert diff[2, 3] and diff.sum() == 1
    # each row mixed alone gives the same value as in the batch
    torch.testing.assert_close(mixer(q[2:3, 3:4], state[2:3, 3:4]), out[2:3, 3:4])
    # other leading shapes: [B, N] -> [B, 1]
    assert mixer(q[:, 0], state[:, 0]).shape == (B, 1)


def test_qmix_flattens_multi_dim_state() -> None:
    mixer = random_mixer(2, 1, state_dim=6)
    q = torch.randn(B, T, N, dtype=torch.float64)
    state = torch.randn(B, T, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(mixer(q, state), mixer(q, state.flatten(2)))


def test_qmix_hypernet_depth() -> None:
    one = QMixer(N, S, embed_dim=8, hypernet_layers=1)
    two = QMixer(N, S, embed_dim=8, hypernet_layers=2, hypernet_embed=16)
    assert isinstance(one.hyper_w1, nn.Linear) and one.hyper_w1.out_features == 8 * N
    assert isinstance(two.hyper_w1, nn.Sequential)
    assert two.hyper_w1[0].out_features == 16 and two.hyper_w1[-1].out_features == 8 * N
    with pytest.raises(ValueError, match="hypernet_layers"):
        QMixer(N, S, hypernet_layers=3)


def test_qmix_gradients_reach_every_parameter() -> None:
    mixer = random_mixer(2, 4)
    q = torch.randn(B, T, N, dtype=torch.float64)
    state = torch.randn(B, T, S, dtype=torch.float64)
    mixer(q, state).square().mean().backward()
    for name, p in mixer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_vdn_is_sum() -> None:
    q = torch.randn(B, T, N)
    out = VDNMixer()(q, torch.randn(B, T, S))
    assert out.shape == (B, T, 1)
    torch.testing.assert_close(out, q.sum(-1, keepdim=True))


def test_make_mixer() -> None:
    assert MIXERS == ("none", "vdn", "qmix")
    assert make_mixer("none", N, S) is None
    assert isinstance(make_mixer("vdn", N, S), VDNMixer)
    qmix = make_mixer("qmix", N, S, embed_dim=4, hypernet_layers=1, hypernet_embed=9)
    assert isinstance(qmix, QMixer)
    assert qmix.embed_dim == 4 and qmix.hyper_w1.out_features == 4 * N
    with pytest.raises(ValueError) as err:
        make_mixer("qmixx", N, S)
    msg = str(err.value)
    assert "qmixx" in msg
    for name in MIXERS:
        assert name in msg
