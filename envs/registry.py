"""The environment registry: families of ids such as ``lbf:8x8-2p-3f``, looked up by prefix.

A family owns every id that starts with ``<prefix>:`` and parses the rest itself, so "any size,
players and food" needs no list of names. Each family also lists a catalogue of ids, which
``marl envs`` prints and which unknown ids are matched against for suggestions, and a
version, bumped whenever its dynamics change (:func:`env_version`).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from marl.spec import VecEnv


class UnknownEnvId(ValueError):
    """An id no registered family recognises (the message lists the closest ids)."""


@dataclass(frozen=True)
class EnvFamily:
    """A family of environment ids sharing one prefix.

    ``make(name, num_envs, device, **kwargs)`` builds the batched environment for the part of
    the id after the prefix and raises :class:`UnknownEnvId` when it does not parse;
    ``parallel_env(name, **kwargs)`` builds the PettingZoo face (by default: ``make`` with one
    copy, wrapped). ``catalogue()`` yields the names it offers, without the prefix.
    """

    prefix: str
    summary: str
    pattern: str
    make: Callable[..., VecEnv]
    catalogue: Callable[[], Iterable[str]]
    parallel_env: Callable[..., Any] | None = None
    version: int = 1  # bumped whenever the family's dynamics change (its card lists them)


_FAMILIES: dict[str, EnvFamily] = {}


def register_family(family: EnvFamily) -> None:
    """Add a family; a prefix can be registered once."""
    if family.prefix in _FAMILIES:
        raise ValueError(f"environment family '{family.prefix}:' is already registered")
    _FAMILIES[family.prefix] = family


def families() -> dict[str, EnvFamily]:
    """The registered families by prefix."""
    return dict(_FAMILIES)


def all_ids() -> list[str]:
    """Every catalogued id of every family, with its prefix."""
    return [f"{p}:{name}" for p, fam in _FAMILIES.items() for name in fam.catalogue()]


def _family(env_id: str) -> tuple[EnvFamily, str]:
    if not isinstance(env_id, str):
        raise TypeError(f"an environment id is a string such as 'lbf:8x8-2p-3f', got {env_id!r}")
    prefix, sep, name = env_id.partition(":")
    if sep and prefix in _FAMILIES:
        return _FAMILIES[prefix], name
    raise unknown_id(env_id)


def unknown_id(env_id: str, reason: str = "") -> UnknownEnvId:
    """The error for an id nobody recognises, listing the closest registered ids."""
    close = difflib.get_close_matches(env_id, all_ids(), n=5, cutoff=0.5)
    prefixes = ", ".join(f"'{p}:'" for p in _FAMILIES)
    hint = f"; closest: {', '.join(close)}" if close else ""
    why = f" ({reason})" if reason else ""
    return UnknownEnvId(
        f"unknown environment id '{env_id}'{why}{hint}. Families: {prefixes}; "
        "`marl envs` lists them all"
    )


def check_kwargs(
    env_id: str, target: Callable[..., Any], kwargs: dict[str, Any], reserved: Iterable[str] = ()
) -> None:
    """Raise ``TypeError`` naming any keyword ``target`` does not accept."""
    params = inspect.signature(target).parameters
    accepted = [
        n
        for n, p in params.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in set(reserved)
    ]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise TypeError(
                f"unknown argument '{key}' for environment '{env_id}'{hint} "
                f"Accepted: {', '.join(accepted)}"
            )


def env_version(env_id: str) -> str:
    """The versioned name of the environment ``env_id`` resolves to, e.g. ``lbf-v1``: runs
    and checkpoints record it, and a checkpoint of another version is refused."""
    family, _ = _family(env_id)
    return f"{family.prefix}-v{family.version}"


def make(
    env_id: str, num_envs: int = 1, device: str | torch.device = "cpu", **kwargs: Any
) -> VecEnv:
    """Build ``num_envs`` copies of a registered environment on ``device``."""
    family, name = _family(env_id)
    return family.make(name, num_envs, device, **kwargs)


def parallel_env(env_id: str, **kwargs: Any) -> Any:
    """One copy of a registered environment as a PettingZoo ``ParallelEnv``."""
    family, name = _family(env_id)
    if family.parallel_env is not None:
        return family.parallel_env(name, **kwargs)
    from marl.batched_env import BatchedEnv
    from marl.envs.pettingzoo_face import PettingZooEnv

    render_mode = kwargs.pop("render_mode", None)
    env = family.make(name, 1, "cpu", **kwargs)
    if not isinstance(env, BatchedEnv):
        raise TypeError(f"{env_id}: the PettingZoo face needs a BatchedEnv, and this family "
                        f"builds {type(env).__name__}; give the family its own parallel_env")
    return PettingZooEnv(env, env_id, render_mode=render_mode)
