"""Checkers for any environment: use them on your own environments too.

``check_vec_env(env)`` checks a batched environment against the protocol in :mod:`marl.spec`
(shapes, dtypes, device, available actions, autoreset, determinism under a seed);
``check_parallel_env(env_fn)`` runs PettingZoo's parallel API test and seed test.

A broken protocol raises :class:`ProtocolError` (an ``AssertionError``, so test runners report
it as a failed check) naming what broke and where. The checks are explicit ``raise``
statements, not ``assert``, so they also run under ``python -O``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from marl.spec import Obs, Step, VecEnv


class ProtocolError(AssertionError):
    """An environment breaks the batched-environment protocol; the message says what and
    where (``reset``, ``step t``, ``step t (final_obs)``)."""


def _expect(ok: bool | torch.Tensor, message: str) -> None:
    if not bool(ok):
        raise ProtocolError(message)


def _check_obs(env: VecEnv, o: Obs, where: str) -> None:
    b, spec = env.num_envs, env.spec
    expected = {
        "obs": ((b, spec.n_agents, *spec.obs_shape), None),
        "state": ((b, *spec.state_shape), None),
        "avail": ((b, spec.n_agents, spec.n_actions), torch.bool),
    }
    for name, (shape, dtype) in expected.items():
        t = getattr(o, name)
        _expect(tuple(t.shape) == shape, f"{where}: {name} has shape {list(t.shape)}, not {shape}")
        _expect(t.device == env.device, f"{where}: {name} is on {t.device}, not {env.device}")
        if dtype is not None:
            _expect(t.dtype == dtype, f"{where}: {name} has dtype {t.dtype}, not {dtype}")
        else:
            _expect(t.dtype.is_floating_point, f"{where}: {name} has dtype {t.dtype}, not float")
    _expect(o.avail.any(-1).all(), f"{where}: an agent has no available action")


def _random_available(avail: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    scores = torch.rand(avail.shape, generator=gen, device=avail.device)
    return scores.masked_fill(~avail, -1.0).argmax(-1)


def _rollout(env: VecEnv, seed: int, steps: int) -> list[Step]:
    gen = torch.Generator(device=env.device).manual_seed(seed)
    o = env.reset(seed=seed)
    _check_obs(env, o, "reset")
    out = []
    for t in range(steps):
        actions = _random_available(o.avail, gen)
        sent = actions.clone()
        step = env.step(actions)
        where = f"step {t}"
        _expect(torch.equal(actions, sent), f"{where}: step() modified the caller's actions")
        _check_obs(env, step.obs, where)
        _check_obs(env, step.final_obs, where + " (final_obs)")
        b, n = env.num_envs, env.spec.n_agents
        _expect(tuple(step.reward.shape) == (b, n),
                f"{where}: reward shape {list(step.reward.shape)}, not {(b, n)}")
        for name in ("terminated", "truncated"):
            flag = getattr(step, name)
            _expect(flag.dtype == torch.bool and tuple(flag.shape) == (b,),
                    f"{where}: {name} has dtype {flag.dtype} and shape {list(flag.shape)}, "
                    f"not torch.bool and {(b,)}")
        _expect(not (step.terminated & step.truncated).any(),
                f"{where}: a copy is both terminated and truncated")
        live = ~step.done
        _expect(torch.equal(step.obs.obs[live], step.final_obs.obs[live]),
                f"{where}: obs and final_obs differ for a copy that did not finish")
        for key, value in step.info.items():
            _expect(value.shape[:1] == (b,), f"{where}: info[{key!r}] is not batched")
        out.append(step)
        o = step.obs
    return out


def check_vec_env(env: VecEnv, steps: int = 200, seed: int = 0) -> None:
    """Step ``env`` with random available actions, twice under one seed; raise
    :class:`ProtocolError` naming the first thing that breaks the protocol."""
    first = _rollout(env, seed, steps)
    again = _rollout(env, seed, steps)
    for t, (a, b) in enumerate(zip(first, again, strict=True)):
        _expect(torch.equal(a.obs.obs, b.obs.obs) and torch.equal(a.reward, b.reward),
                f"step {t}: the same seed and actions gave different results")
    _expect(any(s.done.any() for s in first) or steps < env.spec.episode_limit,
            f"no episode ended in {steps} steps though episode_limit is "
            f"{env.spec.episode_limit}")


def check_parallel_env(env_fn: Callable[[], object], num_cycles: int = 200) -> None:
    """PettingZoo's ``parallel_api_test`` and ``parallel_seed_test`` on ``env_fn()``.

    PettingZoo's tests check with ``assert``, which ``python -O`` strips: there they could not
    fail, so this raises ``RuntimeError`` instead of passing."""
    if not __debug__:
        raise RuntimeError("check_parallel_env runs PettingZoo's API and seed tests, which check "
                           "with assert: run it without python -O (or PYTHONOPTIMIZE)")
    from pettingzoo.test import parallel_api_test, parallel_seed_test

    parallel_api_test(env_fn(), num_cycles=num_cycles)
    parallel_seed_test(env_fn)
