"""AgentNet: shared vs per-agent equivalence, sequence vs stepping, inputs, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from marl import nets
from marl.nets import AgentGRU, AgentLinear, AgentNet, _GRUSteps, agent_inputs, input_dim

B, T, N, IN, A, H = 4, 6, 3, 9, 5, 16

BOTH = pytest.mark.parametrize("rnn", [True, False], ids=["rnn", "ff"])
ALL = pytest.mark.parametrize(
    "rnn,shared", list(itertools.product([True, False], [True, False])),
    ids=["rnn-shared", "rnn-agent", "ff-shared", "ff-agent"],
)


pytestmark = pytest.mark.usefixtures("one_thread")


def make_net(rnn: bool, shared: bool, seed: int = 0) -> AgentNet:
    torch.manual_seed(seed)
    return AgentNet(IN, A, N, hidden_dim=H, rnn=rnn, shared=shared)


def copy_linear(dst: AgentLinear, src: nn.Linear, agent: int | None = None) -> None:
    """Copy ``src`` into every agent of ``dst`` (or only ``agent``)."""
    agents = range(dst.weight.shape[0]) if agent is None else [agent]
    with torch.no_grad():
        for i in agents:
            dst.weight[i] = src.weight.T
            dst.bias[i] = src.bias


def copy_gru(dst: AgentGRU, src: nn.GRU, agent: int | None = None) -> None:
    agents = range(dst.input_gates.weight.shape[0]) if agent is None else [agent]
    with torch.no_grad():
        for i in agents:
            dst.input_gates.weight[i] = src.weight_ih_l0.T
            dst.input_gates.bias[i] = src.bias_ih_l0
            dst.hidden_gates.weight[i] = src.weight_hh_l0.T
            dst.hidden_gates.bias[i] = src.bias_hh_l0


def copy_net(dst: AgentNet, src: AgentNet, agent: int | None = None) -> None:
    """Per-agent ``dst`` takes shared ``src``'s weights (for every agent, or only ``agent``)."""
    copy_linear(dst.fc_in, src.fc_in, agent)
    if src.rnn:
        copy_gru(dst.core, src.core, agent)
    else:
        copy_linear(dst.core, src.core, agent)
    copy_linear(dst.fc_out, src.fc_out, agent)


def step_all(net: AgentNet, x: torch.Tensor) -> torch.Tensor:
    """``x [B, T, N, in]`` stepped through ``forward`` from zero memory."""
    memory = net.initial_memory(x.shape[0])
    outs = []
    for t in range(x.shape[1]):
        out, memory = net(x[:, t], memory)
        outs.append(out)
    return torch.stack(outs, dim=1)


def test_layer_shapes() -> None:
    net = make_net(True, False)
    assert net.fc_in.weight.shape == (N, IN, H) and net.fc_in.bias.shape == (N, H)
    assert net.core.input_gates.weight.shape == (N, H, 3 * H)
    assert net.core.hidden_gates.weight.shape == (N, H, 3 * H)
    assert net.fc_out.weight.shape == (N, H, A)
    shared = make_net(True, True)
    assert isinstance(shared.core, nn.GRU)
    assert shared.core.weight_ih_l0.shape == (3 * H, H)


@BOTH
def test_per_agent_copy_of_shared_matches(rnn: bool) -> None:
    shared = make_net(rnn, True, seed=1)
    agent = make_net(rnn, False, seed=2)
    copy_net(agent, shared)
    x = torch.randn(B, T, N, IN, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(agent.sequence(x), shared.sequence(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(step_all(agent, x), step_all(shared, x), rtol=0, atol=1e-5)
    memory = torch.randn(B, N, agent.memory_dim, generator=torch.Generator().manual_seed(4))
    out_a, mem_a = agent(x[:, 0], memory)
    out_s, mem_s = shared(x[:, 0], memory)
    torch.testing.assert_close(out_a, out_s, rtol=0, atol=1e-5)
    torch.testing.assert_close(mem_a, mem_s, rtol=0, atol=1e-5)


@BOTH
def test_per_agent_weights_are_each_agents_own(rnn: bool) -> None:
    """Agent ``i`` of a per-agent net computes exactly the shared net given its weights."""
    agent = make_net(rnn, False, seed=5)
    x = torch.randn(B, T, N, IN, generator=torch.Generator().manual_seed(6))
    for i in range(N):
        shared = make_net(rnn, True, seed=10 + i)
        copy_net(agent, shared, agent=i)
        out = agent.sequence(x)  # agents other than i keep their own (earlier copied) weights
        ref = shared.sequence(x)
        torch.testing.assert_close(out[:, :, i], ref[:, :, i], rtol=0, atol=1e-5)
        if i > 0:  # agent i's new weights leave agent 0 (copied from another net) alone
            first = make_net(rnn, True, seed=10)
            torch.testing.assert_close(out[:, :, 0], first.sequence(x)[:, :, 0],
                                       rtol=0, atol=1e-5)


@ALL
def test_sequence_equals_stepping(rnn: bool, shared: bool) -> None:
    net = make_net(rnn, shared, seed=7)
    x = torch.randn(B, T, N, IN, generator=torch.Generator().manual_seed(8))
    seq = net.sequence(x)
    assert seq.shape == (B, T, N, A)
    torch.testing.assert_close(seq, step_all(net, x), rtol=0, atol=1e-5)


def unroll_by_steps(net: AgentNet, x: torch.Tensor, memory: torch.Tensor,
                    starts: torch.Tensor) -> torch.Tensor:
    """``AgentNet.unroll`` as one-step calls, the memory zeroed where an episode starts."""
    out = []
    for t in range(x.shape[0]):
        memory = torch.where(starts[t, :, None, None], net.initial_memory(x.shape[1]), memory)
        q, memory = net(x[t], memory)
        out.append(q)
    return torch.stack(out)


@ALL
def test_unroll_gradients_equal_stepping(rnn: bool, shared: bool) -> None:
    """The rollout's output and the gradients of a loss on it (inputs, the memory it began
    with, every parameter) equal those of stepping through it, resets included."""
    net = make_net(rnn, shared, seed=11)
    g = torch.Generator().manual_seed(12)
    x = torch.randn(T, B, N, IN, generator=g)
    memory = torch.randn(B, N, net.memory_dim, generator=g)
    starts = torch.rand(T, B, generator=g) < 0.3
    starts[2, 1] = starts[0, 0] = True  # a reset mid-rollout and one at its first step
    weights = torch.randn(T, B, N, A, generator=g)
    grads = []
    for run in (net.unroll, lambda *a: unroll_by_steps(net, *a)):
        net.zero_grad()
        xs, mem = x.clone().requires_grad_(), memory.clone().requires_grad_()
        out = run(xs, mem, starts)
        (out * weights).sum().backward()
        grads.append([out.detach(), xs.grad, mem.grad if rnn else torch.zeros(0)]
                     + [p.grad for p in net.parameters()])
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block_steps", [1, 2, None], ids=["step", "pairs", "all"])
@pytest.mark.parametrize("sizes", [(3, 3, 3, 3, 3), (3, 3, 2, 1, 1)], ids=["rollout", "packed"])
def test_gru_steps_gradcheck(block_steps: int | None, sizes: tuple[int, ...],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The GRU's own backward against finite differences (float64), its gate coefficients
    computed a step, two steps or every step at a time, every row at every step (a rollout)
    or rows ending before others (packed episodes)."""
    g = torch.Generator().manual_seed(13)
    rows, h = sum(sizes), 4
    if block_steps is not None:
        monkeypatch.setattr(nets, "_BACKWARD_BLOCK", block_steps * sizes[0] * h)
    keep = (torch.rand(rows, 1, generator=g) > 0.3).double()
    inputs = (torch.randn(rows, 3 * h, generator=g, dtype=torch.float64),
              torch.randn(sizes[0], h, generator=g, dtype=torch.float64), keep,
              torch.randn(3 * h, h, generator=g, dtype=torch.float64),
              torch.randn(3 * h, generator=g, dtype=torch.float64))
    for i, x in enumerate(inputs):
        x.requires_grad_(i != 2)
    assert torch.autograd.gradcheck(lambda *a: _GRUSteps.apply(*a, sizes), inputs)


@ALL
@pytest.mark.parametrize("lengths", [[2, T, 1, 4], [T, T - 1, T, T]],
                         ids=["mostly-padding", "little-padding"])
def test_sequence_of_real_steps_equals_stepping(rnn: bool, shared: bool,
                                                lengths: list[int]) -> None:
    """With episode lengths (unsorted), the output at real steps and the gradients of a loss
    on them (inputs, every parameter) equal those of stepping through each episode; padding
    is 0. A batch that is mostly padding runs packed on a CPU, the others padded."""
    net = make_net(rnn, shared, seed=14)
    g = torch.Generator().manual_seed(15)
    x = torch.randn(B, T, N, IN, generator=g)
    steps = torch.tensor(lengths)
    real = (torch.arange(T) < steps[:, None])[..., None, None]
    weights = torch.randn(B, T, N, A, generator=g) * real
    grads = []
    for run in (lambda v: net.sequence(v, steps), lambda v: step_all(net, v)):
        net.zero_grad()
        xs = x.clone().requires_grad_()
        out = run(xs)
        (out * weights).sum().backward()
        grads.append([out.detach() * real, xs.grad] + [p.grad for p in net.parameters()])
        if len(grads) == 1:
            assert torch.equal(out.detach() * ~real, torch.zeros_like(out))
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@ALL
def test_memory_shapes(rnn: bool, shared: bool) -> None:
    net = make_net(rnn, shared)
    memory = net.initial_memory(B)
    assert memory.shape == (B, N, H if rnn else 0) and not memory.any()
    out, new = net(torch.randn(B, N, IN), memory)
    assert out.shape == (B, N, A) and new.shape == memory.shape
    if rnn:  # memory carries information: a different memory changes the output
        out2, _ = net(torch.zeros(B, N, IN), torch.ones(B, N, H))
        out3, _ = net(torch.zeros(B, N, IN), memory)
        assert not torch.allclose(out2, out3)


@ALL
def test_gradients_reach_every_parameter(rnn: bool, shared: bool) -> None:
    net = make_net(rnn, shared, seed=9)
    x = torch.randn(8, T, N, IN, generator=torch.Generator().manual_seed(10))
    loss = net.sequence(x).square().mean()
    out, _ = net(x[:, 0], net.initial_memory(8))
    (loss + out.square().mean()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
        if not shared:  # every agent's own slice learns
            for i in range(N):
                assert p.grad[i].abs().sum() > 0, f"{name}[{i}]"


def test_agent_inputs_all_parts() -> None:
    gen = torch.Generator().manual_seed(11)
    obs = torch.randn(B, T, N, IN, generator=gen)
    last = torch.randint(-1, A, (B, T, N), generator=gen)
    last[0, 0] = -1  # an episode's first step
    x = agent_inputs(obs, last, A, agent_id=True)
    assert x.shape == (B, T, N, IN + A + N)
    assert x.dtype == obs.dtype
    assert torch.equal(x[..., :IN], obs)
    onehot = x[..., IN : IN + A]
    none = last < 0
    assert not onehot[none].any()
    assert torch.equal(onehot[~none], F.one_hot(last[~none], A).to(obs.dtype))
    assert torch.equal(onehot.sum(-1), (~none).to(obs.dtype))
    ids = x[..., IN + A :]
    assert torch.equal(ids, torch.eye(N).expand(B, T, N, N))


def test_agent_inputs_no_extras_is_obs() -> None:
    obs = torch.randn(B, N, IN)
    assert torch.equal(agent_inputs(obs, None, A, agent_id=False), obs)


def test_agent_inputs_without_lead_dims() -> None:
    obs = torch.randn(N, IN, dtype=torch.float64)
    x = agent_inputs(obs, torch.tensor([-1, 0, A - 1]), A, agent_id=True)
    assert x.shape == (N, IN + A + N) and x.dtype == torch.float64
    expected_action = torch.zeros(N, A, dtype=torch.float64)
    expected_action[1, 0] = expected_action[2, A - 1] = 1
    assert torch.equal(x[:, IN : IN + A], expected_action)
    assert torch.equal(x[:, IN + A :], torch.eye(N, dtype=torch.float64))


@pytest.mark.parametrize("last_action,agent_id", list(itertools.product([False, True], repeat=2)))
def test_input_dim_matches_agent_inputs(last_action: bool, agent_id: bool) -> None:
    obs = torch.randn(2, N, IN)
    last = torch.zeros(2, N, dtype=torch.long) if last_action else None
    x = agent_inputs(obs, last, A, agent_id)
    width = input_dim(IN, N, A, last_action=last_action, agent_id=agent_id)
    assert x.shape[-1] == width
    net = AgentNet(width, A, N, hidden_dim=H)
    out, _ = net(x, net.initial_memory(2))
    assert out.shape == (2, N, A)
