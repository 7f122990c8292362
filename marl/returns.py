"""Return targets computed with tensor ops: TD(λ) over padded episodes; GAE and n-step returns
over rollouts."""

from __future__ import annotations

import torch


def td_lambda_targets(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """TD(λ) targets ``G_t`` for every step of ``[B, T, ...]`` episodes.

    ``next_values[:, t]`` is the bootstrap value of the state after step ``t``;
    ``terminated[:, t]`` stops bootstrapping there; ``mask[:, t]`` marks real steps (a padded
    step contributes nothing). The recursion, backwards from each episode's last step:
    ``G_t = r_t + γ (1 - d_t) [(1 - λ) V_{t+1} + λ G_{t+1}]``, with ``G_{t+1} = V_{t+1}`` at the
    last real step. ``λ = 0`` gives one-step targets, ``λ = 1`` Monte-Carlo returns
    (bootstrapped at truncation).
    """
    shape = torch.broadcast_shapes(rewards.shape, next_values.shape)
    rewards = rewards.expand(shape)
    cont = (~terminated).to(rewards.dtype)
    valid = mask.expand(shape)
    zero = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    if lam == 0:
        return torch.where(valid, rewards + gamma * cont * next_values, zero)
    # past the last real step nothing follows: the weight on G_{t+1} is 0 there
    nxt_valid = torch.cat([valid[:, 1:], torch.zeros_like(valid[:, :1])], dim=1)
    w = lam * nxt_valid.to(rewards.dtype)
    # G_t = a_t + b_t G_{t+1}: everything but the recursion itself in whole-tensor ops, time
    # first so that each step of the loop is one fused multiply-add into contiguous memory
    a = torch.where(valid, rewards + gamma * cont * (1 - w) * next_values, zero)
    b = torch.where(valid, gamma * cont * w, zero)
    a, b = a.movedim(1, 0).contiguous(), b.movedim(1, 0).contiguous()
    targets = torch.empty_like(a)
    g_next = torch.zeros_like(a[0])
    for t in range(a.shape[0] - 1, -1, -1):
        g_next = torch.addcmul(a[t], b[t], g_next, out=targets[t])
    return targets.movedim(0, 1)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and return targets for ``[T, B, ...]`` rollouts.

    ``values[t]`` is ``V(s_t)``; ``next_values[t]`` the value of the state step ``t`` reached:
    ``V(s_{t+1})`` inside an episode, the value of the kept final observation where the
    episode was truncated (unused where it terminated). ``terminated[t]`` stops bootstrapping;
    ``done[t]`` (terminated or truncated) ends the episode, so the recursion
    ``A_t = δ_t + γλ (1 - done_t) A_{t+1}`` with ``δ_t = r_t + γ (1 - term_t) V' - V(s_t)``
    does not reach across it. ``A_T = 0`` past the rollout (``next_values[T-1]`` bootstraps).
    ``terminated``/``done`` are bool and broadcast against ``rewards`` (e.g. ``[T, B, 1]``).
    Returns ``(advantages, advantages + values)``.
    """
    shape = torch.broadcast_shapes(rewards.shape, values.shape, next_values.shape)
    boot = (~terminated).to(rewards.dtype)
    cont = (gamma * lam) * (~done).to(rewards.dtype)
    delta = (rewards + gamma * boot * next_values - values).expand(shape)
    cont = cont.expand(shape)
    advantages = torch.empty(shape, dtype=delta.dtype, device=delta.device)
    last = torch.zeros(shape[1:], dtype=delta.dtype, device=delta.device)
    for t in range(shape[0] - 1, -1, -1):
        last = delta[t] + cont[t] * last
        advantages[t] = last
    return advantages, advantages + values


def nstep_returns(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    n: int,
) -> torch.Tensor:
    """``n``-step return targets for ``[T, B, ...]`` rollouts (EPyMARL's actor-critic targets).

    ``G_t = r_t + γ r_{t+1} + … + γ^{n-1} r_{t+n-1} + γ^n V(s_{t+n})``, cut short where the
    episode ends (``done``: bootstrap ``next_values`` there, or nothing where ``terminated``)
    or where the rollout ends (bootstrap ``values[T]``). ``values`` is ``[T + 1, B, ...]``;
    ``next_values``, ``terminated`` and ``done`` are as in :func:`gae`. Computed as ``n``
    whole-rollout recursions ``G^(m)_t = r_t + γ [(1 - done_t) G^(m-1)_{t+1} + done_t (1 -
    term_t) V'_t]`` from ``G^(0) = V``.
    """
    boot = (~terminated).to(rewards.dtype)
    cont = (~done).to(rewards.dtype)
    end = (1 - cont) * boot * next_values  # what an episode's last step bootstraps from
    g = values
    for _ in range(n):
        g = torch.cat([rewards + gamma * (cont * g[1:] + end), values[-1:]])
    return g[:-1]
