"""Base class that owns the batched protocol, so an environment only writes its tensor rules.

A concrete environment keeps its whole simulation in a *state dataclass* whose fields are
tensors with the copy dimension first (``[B, ...]``) and implements three pure-ish hooks:

- ``_spawn(n)``      → a fresh state for ``n`` copies, drawn with ``self.rng``;
- ``_step(state, a)``→ ``(state, reward [B, N], terminated [B], truncated [B], info)``;
- ``_observe(state)``→ :class:`~marl.spec.Obs` for every copy in ``state``.

Optionally it says what the PettingZoo face reports beyond that: ``obs_bounds()`` and
``state_bounds()`` (finite space bounds; ±inf by default) and ``reset_info()`` (the ``info``
keys ``step`` reports, valued for a fresh episode; none by default).

The base class does the rest: seeding, input validation (switch it off with
``validate=False``), same-step autoreset of finished copies, and keeping the final observation
of a finished episode in the ``Step``. ``compile()`` runs ``_step`` through ``torch.compile``
(an option: see its card). Fresh episodes for the autoreset are spawned in bulk (up
to 1,024 at a time, with their first observations) and handed out as copies finish, because
spawning a few copies every step costs mostly per-call overhead.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import torch

from marl.devices import available_device, on_device
from marl.spec import EnvSpec, Obs, Step

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

S = TypeVar("S", bound="DataclassInstance")  # an environment's state: a dataclass of [B, ...]
_POOL = 1024  # most fresh episodes spawned at once for autoreset


def _slice_state(state: S, part: slice) -> S:
    return dataclasses.replace(
        state, **{f.name: getattr(state, f.name)[part] for f in dataclasses.fields(state)}
    )


def put_state(state: S, ids: torch.Tensor, part: S) -> None:
    """Write the copies of ``part`` into ``state`` at ``ids``, in place."""
    for f in dataclasses.fields(state):
        getattr(state, f.name).index_copy_(0, ids, getattr(part, f.name))


def _ordinary(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``, copied out if inference mode made it."""
    return tensor.clone() if tensor.is_inference() else tensor


def _put_obs(obs: Obs, ids: torch.Tensor, part: Obs) -> Obs:
    return Obs(
        obs=obs.obs.index_copy(0, ids, part.obs),
        state=obs.state.index_copy(0, ids, part.state),
        avail=obs.avail.index_copy(0, ids, part.avail),
    )


class BatchedEnv(ABC, Generic[S]):
    """``num_envs`` copies of one environment stepped as tensors on ``device``."""

    spec: EnvSpec
    # ``_step`` under inference mode (``_transition``): no autograd bookkeeping per op, for
    # rules of thousands of small ops, at the price of copying its results out
    inference_step = False
    # methods that ``compile()`` leaves out of the compiled step (sizes that change per step)
    _left_eager: tuple[str, ...] = ()

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        *,
        validate: bool = True,
        seed: int | None = None,
    ) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = num_envs
        self.device = available_device(device)
        self.validate = validate
        self.autoreset = True  # False: finished copies stay at their final state until reset()
        self.rng = torch.Generator(device=self.device)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
        self.rng.manual_seed(seed)
        self._state: S | None = None
        self._last_obs: Obs | None = None
        self._pool: tuple[S, Obs] | None = None
        self._pool_used = self._pool_size = 0

    # --- hooks a concrete environment implements -------------------------------------------
    @abstractmethod
    def _spawn(self, n: int) -> S: ...

    @abstractmethod
    def _step(
        self, state: S, actions: torch.Tensor
    ) -> tuple[S, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]: ...

    @abstractmethod
    def _observe(self, state: S) -> Obs: ...

    def compile(self) -> BatchedEnv[S]:
        """Run ``_step`` through ``torch.compile`` (inductor: fused loops in C++ on a CPU, in
        Triton on a GPU), in place; returns the environment. The first step compiles (tens
        of seconds on a CPU; inductor keeps the result on disk, so the next process with the
        same shapes loads it in seconds). A compiled step equals the eager one up to float
        rounding (fused arithmetic), so trajectories part after a while: a run's environment
        is compiled only when asked (``compile_env=true``). The methods named in
        ``_left_eager`` run uncompiled inside it (wrapped here, not where they are defined,
        so that importing an environment does not import the compiler)."""
        for name in self._left_eager:
            setattr(self, name, torch.compiler.disable(getattr(self, name)))
        self._step = torch.compile(self._step, dynamic=False)  # type: ignore[method-assign]
        return self

    # --- the protocol ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None) -> Obs:
        """Start a new episode in every copy; ``seed`` reseeds the environment's generator."""
        if seed is not None:
            self.rng.manual_seed(seed)
        self._pool = None
        self._state = self._spawn(self.num_envs)
        self._last_obs = self._observe(self._state)
        return self._last_obs

    def step(self, actions: torch.Tensor) -> Step:
        """Advance every copy by one step; finished copies start a new episode at once."""
        if self._state is None or self._last_obs is None:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset()")
        if self.validate:
            actions = self.check_actions(actions)
        state, reward, terminated, truncated, info = self._transition(self._state, actions)
        final = self._observe(state)
        obs = final
        if self.autoreset:
            finished = (terminated | truncated).nonzero().squeeze(1)
            if finished.numel():
                fresh_state, fresh_obs = self._fresh(finished.numel())
                put_state(state, finished, fresh_state)
                obs = _put_obs(final, finished, fresh_obs)
        self._state = state
        self._last_obs = obs
        return Step(obs, reward, terminated, truncated, final, info)

    def _transition(self, state: S, actions: torch.Tensor) -> tuple[
            S, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``_step``; with ``inference_step``, under ``torch.inference_mode``, its results
        then copied out as ordinary tensors (which callers may change in place and feed to
        autograd; the observations are made from them outside inference mode)."""
        if not self.inference_step:
            return self._step(state, actions)
        with torch.inference_mode():
            state, reward, terminated, truncated, info = self._step(state, actions)
        state = dataclasses.replace(state, **{
            f.name: _ordinary(getattr(state, f.name)) for f in dataclasses.fields(state)})
        return (state, _ordinary(reward), _ordinary(terminated), _ordinary(truncated),
                {key: _ordinary(value) for key, value in info.items()})

    def _fresh(self, n: int) -> tuple[S, Obs]:
        """``n`` new episodes (state, first observation) from the pool; refills it when short."""
        if self._pool is None or self._pool_used + n > self._pool_size:
            self._pool_size = max(n, min(self.num_envs, _POOL))
            pool = self._spawn(self._pool_size)
            self._pool, self._pool_used = (pool, self._observe(pool)), 0
        part = slice(self._pool_used, self._pool_used + n)
        self._pool_used += n
        state, obs = self._pool
        return _slice_state(state, part), Obs(obs.obs[part], obs.state[part], obs.avail[part])

    @property
    def state(self) -> S:
        """The simulation state (tensors, copy dimension first); see :meth:`set_state`."""
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}.state read before reset()")
        return self._state

    def set_state(self, state: S) -> Obs:
        """Replace the simulation state (e.g. one taken from a reference implementation)."""
        self._state = state
        self._last_obs = self._observe(state)
        return self._last_obs

    @property
    def last_obs(self) -> Obs:
        """The observation the next ``step`` acts on."""
        if self._last_obs is None:
            raise RuntimeError(f"{type(self).__name__}.last_obs read before reset()")
        return self._last_obs

    def state_dict(self) -> dict[str, Any]:
        """Everything a run needs to continue exactly: simulation state, last observation,
        the pool of fresh episodes and the generator (checkpoints store it)."""
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}.state_dict() called before reset()")

        def fields(s: Any) -> dict[str, torch.Tensor]:
            return {f.name: getattr(s, f.name).clone() for f in dataclasses.fields(s)}

        pool = None if self._pool is None else (fields(self._pool[0]), self._pool[1].to_dict())
        return {"state": fields(self._state), "last_obs": self.last_obs.to_dict(), "pool": pool,
                "pool_used": self._pool_used, "pool_size": self._pool_size,
                "rng": self.rng.get_state()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (of an env with the same spec and copy count),
        whatever device its tensors are on (checkpoints load on the CPU)."""
        sd = state_on_device(sd, self.device)
        template = self._state if self._state is not None else self._spawn(1)
        state = dataclasses.replace(template, **sd["state"])
        if getattr(state, dataclasses.fields(state)[0].name).shape[0] != self.num_envs:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved state holds a "
                             f"different number of copies than num_envs={self.num_envs}")
        self._state, self._last_obs = state, Obs.from_dict(sd["last_obs"])
        pool = sd["pool"]
        self._pool = None if pool is None else (dataclasses.replace(template, **pool[0]),
                                                Obs.from_dict(pool[1]))
        self._pool_used, self._pool_size = sd["pool_used"], sd["pool_size"]
        self.rng.set_state(sd["rng"])

    def close(self) -> None:
        """Release resources (native environments hold none)."""

    def reset_info(self) -> dict[str, torch.Tensor]:
        """The ``info`` after ``reset``: the keys ``step`` reports, as ``[B]`` tensors valued as
        before anything happened, so that one-copy faces report the same keys from the start
        (TorchRL sizes its info specs on the first reset). None by default."""
        return {}

    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The lowest and highest value of every observation entry (float32 arrays of
        ``obs_shape``); ±inf unless the environment knows them."""
        return _unbounded(self.spec.obs_shape)

    def state_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The lowest and highest value of every state entry, as :meth:`obs_bounds`."""
        return _unbounded(self.spec.state_shape)

    # --- validation ------------------------------------------------------------------------
    def check_actions(self, actions: Any) -> torch.Tensor:
        """Return ``actions`` as int64 ``[B, N]`` or raise ``ValueError`` naming the problem."""
        return check_actions(actions, self.spec, self.num_envs, self.device, self.last_obs.avail)


def _unbounded(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.full(shape, -np.inf, np.float32), np.full(shape, np.inf, np.float32)


def check_actions(
    actions: Any, spec: EnvSpec, num_envs: int, device: torch.device, avail: torch.Tensor | None
) -> torch.Tensor:
    """Return ``actions`` as int64 ``[B, N]``, or raise ``ValueError`` saying which copy,
    agent and action is wrong (shape, dtype, device, range, or not in ``avail``)."""
    b, n, k = num_envs, spec.n_agents, spec.n_actions
    if not isinstance(actions, torch.Tensor):
        raise ValueError(
            f"actions must be a torch.Tensor of int64 [num_envs={b}, n_agents={n}], "
            f"got {type(actions).__name__}"
        )
    if tuple(actions.shape) != (b, n):
        raise ValueError(
            f"actions must have shape [num_envs={b}, n_agents={n}], got {list(actions.shape)}"
        )
    if actions.dtype.is_floating_point or actions.dtype.is_complex or actions.dtype == torch.bool:
        raise ValueError(f"actions must be an integer tensor (int64), got dtype {actions.dtype}")
    if actions.device != device:
        raise ValueError(f"actions are on {actions.device}, the environment on {device}")
    actions = actions.long()
    bad = (actions < 0) | (actions >= k)
    if bad.any():
        copy, agent = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"copy {copy}, agent {agent} ({spec.agent_names[agent]}): action "
            f"{int(actions[copy, agent])} is out of range [0, {k})"
        )
    if avail is not None:
        ok = avail.gather(2, actions.unsqueeze(2)).squeeze(2)
        if not ok.all():
            copy, agent = (int(i) for i in (~ok).nonzero()[0])
            a = int(actions[copy, agent])
            label = f" ({spec.action_names[a]})" if spec.action_names else ""
            allowed = avail[copy, agent].nonzero().squeeze(1).tolist()
            raise ValueError(
                f"copy {copy}, agent {agent} ({spec.agent_names[agent]}): action {a}{label} "
                f"is not available; available actions: {allowed}"
            )
    return actions


def state_on_device(sd: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """An env's :meth:`~BatchedEnv.state_dict` with its tensors on ``device``, but for the
    generator's state (``rng``), a CPU tensor on every device."""
    return {k: v if k == "rng" else on_device(v, device) for k, v in sd.items()}
