"""Agent networks: one batched call for all agents of all copies.

``AgentNet`` is EPyMARL's agent shape — Linear → ReLU → (GRU | Linear → ReLU) → Linear — in two
forms with the same maths:

- **shared** parameters (the default): one network for every agent, which tells agents apart
  by a one-hot agent id in its input; the recurrent layer is ``torch.nn.GRU``, whose maths
  :class:`_GRUSteps` runs with a backward of its own, both for a rollout with resets
  (``unroll``) and, on a CPU, for a batch of whole episodes (``sequence``) that is mostly
  padding, over its real steps only (else ``nn.GRU`` runs the padded batch in one call);
- **per agent** (``shared=False``): every layer holds a weight per agent (``[N, in, out]``)
  applied with one ``einsum``, so there is still no loop over agents.

``ConvEncoder`` turns image observations into features that feed either form.

Inputs are ``[..., N, input_dim]``; the memory of a recurrent net is ``[B, N, hidden]`` (an
empty ``[B, N, 0]`` for a feed-forward one, so callers treat both alike).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable


class AgentLinear(nn.Module):
    """A linear layer with its own weight for each of ``n_agents`` agents (dim ``-2``)."""

    def __init__(self, n_agents: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init, per agent
        self.weight = nn.Parameter(torch.empty(n_agents, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_agents, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...ni,nio->...no", x, self.weight) + self.bias


def _linear(n_agents: int, in_dim: int, out_dim: int, shared: bool) -> nn.Module:
    return nn.Linear(in_dim, out_dim) if shared else AgentLinear(n_agents, in_dim, out_dim)


class AgentGRU(nn.Module):
    """A GRU cell with per-agent weights (``torch.nn.GRU``'s gate maths, run step by step)."""

    def __init__(self, n_agents: int, hidden: int) -> None:
        super().__init__()
        self.input_gates = AgentLinear(n_agents, hidden, 3 * hidden)
        self.hidden_gates = AgentLinear(n_agents, hidden, 3 * hidden)

    def cell(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xr, xz, xn = self.input_gates(x).chunk(3, dim=-1)
        hr, hz, hn = self.hidden_gates(h).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


_BACKWARD_BLOCK = 1 << 15  # elements of gate coefficients computed at once (cache-sized)
# On a CPU, a batch of episodes runs packed (real steps only) when at most this share of its
# padded steps is real, else padded through ``nn.GRU``. Measured by scripts/bench_gru.py
# --lengths (32 episodes, forward and backward, GRU 64 / 128): packed 1.75x / 1.5x faster at
# 45% real, 1.2x / 1.4x at 60%; near 100% the sort and gathers cost what the padding saves.
_PACKED_BELOW = 0.75


class _GRUSteps(torch.autograd.Function):
    """``torch.nn.GRU``'s maths over the steps of a packed batch, its memory multiplied by
    ``keep`` before each step (0: an episode began). Step ``t`` holds the first ``sizes[t]``
    rows (non-increasing: longest sequences first, as ``PackedSequence`` lays them out);
    ``gi [S, 3H]`` are the input's gate projections of every row of every step, step after
    step (``S = sum(sizes)``), ``h0 [sizes[0], H]``, ``keep [S, 1]`` → memory ``[S, H]``.

    A rollout is every row at every step (``sizes`` all equal, episodes begin anywhere); a
    batch of whole episodes is packed (rows end with their episodes, ``keep`` all 1), so the
    padding past an episode's end costs nothing.

    Why its own backward: autograd through ``nn.GRU`` called step by step records ~25 nodes a
    step; here a step is 8 operations forward and 5 backward (the gates' derivatives come for
    blocks of steps at once, blocks small enough to stay in cache), and the weight gradients
    are one matrix product over all steps: forward and backward ~1.6x faster for a rollout of
    EPyMARL's 10 copies on a CPU, the same speed from ~32 copies up (matrix products bound).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, gi: torch.Tensor, h0: torch.Tensor, keep: torch.Tensor,
                w_hh: torch.Tensor, b_hh: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
        total, width = gi.shape
        h = width // 3
        out, before = gi.new_empty(total, h), gi.new_empty(total, h)
        gh = gi.new_empty(total, width)  # the hidden gate projections
        rz, n = gi.new_empty(total, 2 * h), gi.new_empty(total, h)
        memory, w_t = h0, w_hh.t()
        # every step's rows of every buffer, as views made in one call each (slicing them
        # step by step would cost more than a small step's arithmetic)
        views = (gi[:, :2 * h], gi[:, 2 * h:], keep, before, gh, gh[:, :2 * h], gh[:, 2 * h:],
                 rz, rz[:, :h], rz[:, h:], n, out)
        steps = zip(sizes, *(v.split(sizes) for v in views), strict=True)
        for size, gi_rz, gi_n, keep_t, held_t, gh_t, gh_rz, gh_n, rz_t, r, z, n_t, out_t in steps:
            held = torch.mul(memory[:size], keep_t, out=held_t)
            torch.addmm(b_hh, held, w_t, out=gh_t)
            torch.add(gi_rz, gh_rz, out=rz_t).sigmoid_()
            new = torch.addcmul(gi_n, r, gh_n, out=n_t).tanh_()
            memory = torch.addcmul(new, z, held - new, out=out_t)
        ctx.sizes = sizes  # type: ignore[attr-defined]
        ctx.save_for_backward(before, gh, rz, n, keep, w_hh)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, None, torch.Tensor, torch.Tensor, None]:
        before, gh, rz, n, keep, w_hh = ctx.saved_tensors  # type: ignore[attr-defined]
        sizes: tuple[int, ...] = ctx.sizes  # type: ignore[attr-defined]
        total, h = before.shape
        firsts = list(itertools.accumulate(sizes, initial=0))  # each step's first row
        r = rz[:, :h]
        grad_gi = grad_out.new_empty(total, 3, h)
        outs, grads = grad_out.split(sizes), grad_gi.split(sizes)  # each step's rows
        # the gradient reaching the memory from later steps; a row past its last step has none
        carry = grad_out.new_zeros(sizes[0], h)
        budget = max(1, _BACKWARD_BLOCK // h)  # rows of a block of steps
        end = len(sizes)
        while end > 0:
            begin = end - 1
            while begin > 0 and firsts[end] - firsts[begin - 1] <= budget:
                begin -= 1
            span = slice(firsts[begin], firsts[end])
            r_s, z_s, n_s, keep_s = r[span], rz[span, h:], n[span], keep[span]
            # d(pre-activation)/d(new memory) of the gates r, z, n, and of the hidden
            # projection (the same but for n, which the reset gate scales)
            dn = (1 - z_s) * (1 - n_s * n_s)
            to_gi = torch.stack([dn * gh[span, 2 * h:] * r_s * (1 - r_s),
                                 (before[span] - n_s) * z_s * (1 - z_s), dn], dim=1)
            to_gh = to_gi.clone()
            to_gh[:, 2] *= r_s
            to_gh *= keep_s.unsqueeze(-1)  # the memory before a reset gets nothing back
            block = sizes[begin:end]
            for t, to_gi_t, to_gh_t, z_t in reversed(list(zip(
                    range(begin, end), to_gi.split(block), to_gh.split(block),
                    (z_s * keep_s).split(block), strict=True))):
                size = sizes[t]
                dh = (outs[t] + carry[:size]).unsqueeze(1)
                torch.mul(dh, to_gi_t, out=grads[t])
                torch.addmm(dh[:, 0] * z_t, (dh * to_gh_t).view(size, 3 * h), w_hh,
                            out=carry[:size])
            end = begin
        grad_gi = grad_gi.view(total, 3 * h)
        grad_gh = grad_gi.clone()
        grad_gh[:, 2 * h:] *= r
        grad_w = grad_gh.t() @ before
        return grad_gi, carry, None, grad_w, grad_gh.sum(0), None


def on_rows(fn: Callable[..., torch.Tensor], rows: torch.Tensor,
            *inputs: torch.Tensor) -> torch.Tensor:
    """``fn`` of ``inputs [B, T, ...]`` computed where bool ``rows [B, T]`` holds, 0 elsewhere,
    for a function that treats every (episode, step) alone: the padding past an episode's end
    (most of a batch once episodes end early) costs nothing."""
    out = fn(*(x[rows] for x in inputs))
    full = out.new_zeros(*rows.shape, *out.shape[1:])
    full[rows] = out
    return full


class AgentNet(nn.Module):
    """Q-values (or logits) ``[..., N, n_actions]`` from agent inputs ``[..., N, input_dim]``."""

    def __init__(
        self,
        input_dim: int,
        n_actions: int,
        n_agents: int,
        *,
        hidden_dim: int = 64,
        rnn: bool = True,
        shared: bool = True,
    ) -> None:
        super().__init__()
        self.n_agents, self.hidden_dim, self.rnn, self.shared = n_agents, hidden_dim, rnn, shared
        self.fc_in = _linear(n_agents, input_dim, hidden_dim, shared)
        if rnn:
            self.core: nn.Module = (
                nn.GRU(hidden_dim, hidden_dim) if shared else AgentGRU(n_agents, hidden_dim)
            )
        else:
            self.core = _linear(n_agents, hidden_dim, hidden_dim, shared)
        self.fc_out = _linear(n_agents, hidden_dim, n_actions, shared)

    @property
    def memory_dim(self) -> int:
        return self.hidden_dim if self.rnn else 0

    def initial_memory(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Zero memory ``[batch, N, memory_dim]`` for the first step of an episode."""
        return torch.zeros(batch, self.n_agents, self.memory_dim, device=device)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``x [B, N, in]``, ``memory [B, N, H]`` → ``(out [B, N, A], memory)``."""
        z = F.relu(self.fc_in(x))
        if not self.rnn:
            return self.fc_out(F.relu(self.core(z))), memory
        memory = self._recur(z, memory)
        return self.fc_out(memory), memory

    def _recur(self, z: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """One recurrent step: ``z [B, N, H]`` and ``memory [B, N, H]`` → new memory."""
        if self.shared:  # ``nn.GRU``'s cell: the same result, without its sequence machinery
            assert isinstance(self.core, nn.GRU)
            b, n, h = memory.shape
            return torch.gru_cell(z.reshape(b * n, h), memory.reshape(b * n, h),
                                  *self.core.all_weights[0]).reshape(b, n, h)
        assert isinstance(self.core, AgentGRU)  # per-agent weights: the only other recurrence
        return self.core.cell(z, memory)

    def unroll(self, x: torch.Tensor, memory: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """A rollout from a given memory: ``x [T, B, N, in]``, ``memory [B, N, H]`` (before
        step 0), bool ``starts [T, B]`` (memory zeroed before that step: an episode began)
        → ``out [T, B, N, A]``. Episodes may begin anywhere in the rollout."""
        if not self.rnn:
            return self(x, memory)[0]
        z = F.relu(self.fc_in(x))  # the layers around the GRU run once over all steps
        keep = (~starts).to(x.dtype)[..., None, None]
        if self.shared:
            assert isinstance(self.core, nn.GRU)
            w_ih, w_hh, b_ih, b_hh = self.core.all_weights[0]
            t, b, n, h = z.shape
            gi = F.linear(z, w_ih, b_ih).reshape(t * b * n, 3 * h)
            hidden = _GRUSteps.apply(gi, memory.reshape(b * n, h),
                                     keep.expand(t, b, n, 1).reshape(t * b * n, 1), w_hh, b_hh,
                                     (b * n,) * t)
            return self.fc_out(hidden.reshape(t, b, n, h))
        steps = []
        for t in range(x.shape[0]):
            memory = self._recur(z[t], memory * keep[t])
            steps.append(memory)
        return self.fc_out(torch.stack(steps))

    def sequence(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Whole episodes from zero memory: ``x [B, T, N, in]`` → ``out [B, T, N, A]``. With
        ``lengths [B]`` (each >= 1), only the first ``lengths[b]`` steps of episode ``b`` are
        real: the rest is padding, whose output is 0 and, on a CPU when it is a good share
        of the batch, costs nothing."""
        if lengths is None:
            lengths = torch.full(x.shape[:1], x.shape[1], device=x.device)
        real = torch.arange(x.shape[1], device=x.device) < lengths[:, None]  # [B, T]
        if not self.rnn:
            return on_rows(lambda v: self.fc_out(F.relu(self.core(F.relu(self.fc_in(v))))),
                            real, x)
        if self.shared and x.device.type == "cpu" and real.float().mean() <= _PACKED_BELOW:
            return self._packed_sequence(x, lengths, real)
        z = F.relu(self.fc_in(x))
        b, t, n, h = z.shape
        if self.shared:  # one call over the padded batch (a GPU's GRU kernel runs it whole)
            out, _ = self.core(z.permute(1, 0, 2, 3).reshape(t, b * n, h))
            hidden = out.reshape(t, b, n, h).permute(1, 0, 2, 3)
        else:
            assert isinstance(self.core, AgentGRU)  # per-agent weights
            mem = z.new_zeros(b, n, h)
            steps = []
            for i in range(t):
                mem = self.core.cell(z[:, i], mem)
                steps.append(mem)
            hidden = torch.stack(steps, dim=1)
        return self.fc_out(hidden) * real[..., None, None]

    def _packed_sequence(self, x: torch.Tensor, lengths: torch.Tensor,
                         real: torch.Tensor) -> torch.Tensor:
        """``sequence`` of the shared GRU over the real steps only: the episodes sorted
        longest first, each step's real rows are a prefix of the batch (``_GRUSteps``)."""
        assert isinstance(self.core, nn.GRU)
        w_ih, w_hh, b_ih, b_hh = self.core.all_weights[0]
        b, _, n, _ = x.shape
        order = torch.argsort(lengths, descending=True, stable=True)
        by_step = real[order].t()  # [T, B]: each row a prefix of the sorted episodes
        sizes = tuple(int(k) * n for k in by_step.sum(1).tolist() if k > 0)
        z = F.relu(self.fc_in(x[order].transpose(0, 1)[by_step]))  # [S, N, H], step by step
        rows = z.reshape(-1, self.hidden_dim)
        h0, keep = rows.new_zeros(sizes[0], rows.shape[1]), rows.new_ones(rows.shape[0], 1)
        hidden = _GRUSteps.apply(F.linear(rows, w_ih, b_ih), h0, keep, w_hh, b_hh, sizes)
        out = self.fc_out(hidden.reshape(z.shape))  # [S, N, A]
        full = out.new_zeros(by_step.shape[0], b, n, out.shape[-1])
        full[by_step] = out
        return full.transpose(0, 1)[torch.argsort(order)]


class ConvEncoder(nn.Module):
    """Image observations ``[..., N, C, H, W]`` → features ``[..., N, out_dim]``.

    Two 3×3 convolutions (the second with stride 2) and a linear layer, ReLU after each. With
    ``shared=False`` every agent has its own weights, applied in one grouped convolution over
    the agents' channels, so there is no loop over agents either way.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_agents: int, *, channels: int = 32,
                 out_dim: int = 64, shared: bool = True) -> None:
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(f"ConvEncoder needs image observations [C, H, W], got {obs_shape}")
        c, h, w = obs_shape
        self.obs_shape, self.shared = tuple(obs_shape), shared
        g = 1 if shared else n_agents
        self.conv = nn.Sequential(
            nn.Conv2d(c * g, channels * g, 3, padding=1, groups=g), nn.ReLU(),
            nn.Conv2d(channels * g, channels * g, 3, stride=2, padding=1, groups=g), nn.ReLU(),
        )
        self.flat = channels * ((h + 1) // 2) * ((w + 1) // 2)
        self.fc = _linear(n_agents, self.flat, out_dim, shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead, n = x.shape[:-4], x.shape[-4]
        if self.shared:
            y = self.conv(x.reshape(-1, *self.obs_shape))
        else:
            y = self.conv(x.reshape(-1, n * self.obs_shape[0], *self.obs_shape[1:]))
        return F.relu(self.fc(y.reshape(*lead, n, self.flat)))


def agent_inputs(
    obs: torch.Tensor, last_action: torch.Tensor | None, n_actions: int, agent_id: bool
) -> torch.Tensor:
    """Network input ``[*lead, N, in]``: observation, then last-action and agent-id one-hots.

    ``obs`` is ``[*lead, N, obs_dim]`` (flattened by the caller); ``last_action`` is int
    ``[*lead, N]`` with ``-1`` for none (an episode's first step), or ``None`` when the last
    action is not part of the input.
    """
    parts = [obs]
    if last_action is not None:
        onehot = F.one_hot(last_action.clamp(min=0), n_actions).to(obs.dtype)
        parts.append(onehot * (last_action >= 0).unsqueeze(-1).to(obs.dtype))
    if agent_id:
        n = obs.shape[-2]
        eye = torch.eye(n, dtype=obs.dtype, device=obs.device)
        parts.append(eye.expand(*obs.shape[:-1], n))
    return torch.cat(parts, dim=-1) if len(parts) > 1 else obs


def input_dim(obs_dim: int, n_agents: int, n_actions: int, *, last_action: bool,
              agent_id: bool) -> int:
    """Width of :func:`agent_inputs`' output."""
    return obs_dim + (n_actions if last_action else 0) + (n_agents if agent_id else 0)
