"""The algorithm registry: names, their config defaults, and how to build their learners.

It lives in the core so that the config layer and the trainer find algorithms without importing
them: the built-in ones (:mod:`marl.algos`) and any other package's register themselves when
the registry first loads the ``marl.algorithms`` entry points (``pyproject.toml``:
``[project.entry-points."marl.algorithms"] name = "your.module"``).

An algorithm is its learner config's defaults (``config()``) plus its YAML file's values
(``configs/algos/<name>.yaml``), and the learner keys in ``defines`` are what make it that
algorithm (IQL's mixer is ``none``, MAPPO's critic sees the state): a config may not change
them, so ``--algo iql mixer=qmix`` is refused rather than run QMIX under IQL's name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import torch

from marl.spec import EnvSpec

ENTRY_POINTS = "marl.algorithms"


class UnknownAlgorithm(ValueError):
    """A name no registered algorithm has (the message lists them)."""


@dataclass(frozen=True)
class Algorithm:
    """A registered algorithm: its config class and how to build its learner."""

    name: str
    summary: str
    config: Callable[[], Any]  # the learner config with this algorithm's defaults
    make_learner: Callable[[EnvSpec, Any, torch.device, int], Any]  # a marl.learner protocol
    on_policy: bool = False  # trained from fresh rollouts (RolloutBuffer), not a replay
    defines: tuple[str, ...] = ()  # learner keys fixed to config()'s values


_ALGOS: dict[str, Algorithm] = {}
_loaded = False


def register_algorithm(algorithm: Algorithm) -> None:
    """Add ``algorithm`` to the registry; a name can be registered once."""
    if algorithm.name in _ALGOS:
        raise ValueError(f"algorithm {algorithm.name!r} is already registered")
    _ALGOS[algorithm.name] = algorithm


def _load_plugins() -> None:
    """Import every module of the ``marl.algorithms`` entry points (once); they register."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        entry.load()


def algorithms() -> dict[str, Algorithm]:
    """Registered algorithms by name."""
    _load_plugins()
    return dict(_ALGOS)


def get_algorithm(name: str) -> Algorithm:
    """The algorithm called ``name``; an unknown name lists the registered ones."""
    _load_plugins()
    if name not in _ALGOS:
        near = difflib.get_close_matches(name, list(_ALGOS), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UnknownAlgorithm(f"unknown algorithm {name!r}.{hint} Registered: "
                               f"{', '.join(_ALGOS)}")
    return _ALGOS[name]
