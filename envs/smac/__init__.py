"""StarCraft Multi-Agent Challenge (SMAC) scenarios: unit statistics, maps, damage rules.

``marl.envs.smac.units`` holds the StarCraft II unit statistics the SMAC maps use,
``marl.envs.smac.maps`` the maps themselves (unit lists, episode limits, and the observation,
state and action sizes they give under SMAC's default flags), and ``marl.envs.smac.combat``
SC2's damage rules (bonuses, shields before armour) as tensor code; ``marl.envs.smac.env`` the
batched simulator (its docstring is the card: interface, dynamics, the enemy AI's rule).

Ids: ``smac:<map>`` for every map of :data:`MAPS`.

Versions
--------
- v1: 32 × 32 ground, walls where the map has them (``corridor``), SMAC's interface with
  default flags.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from marl.envs.registry import EnvFamily, check_kwargs, register_family, unknown_id
from marl.envs.smac.env import SMACEnv, SMACState
from marl.envs.smac.maps import MAPS, SMACMap

__all__ = ["MAPS", "SMACEnv", "SMACMap", "SMACState"]


def make(name: str, num_envs: int = 1, device: str | torch.device = "cpu",
         **kwargs: Any) -> SMACEnv:
    """``smac:<map>`` as a batched environment."""
    if name not in MAPS:
        raise unknown_id(f"smac:{name}", "SMAC ids are smac:<map>, e.g. smac:3m")
    check_kwargs(f"smac:{name}", SMACEnv, kwargs, reserved=("scenario", "num_envs", "device"))
    return SMACEnv(MAPS[name], num_envs, device, **kwargs)


def catalogue() -> Iterator[str]:
    """Every SMAC map."""
    return iter(MAPS)


register_family(EnvFamily(
    prefix="smac",
    summary="StarCraft micromanagement (SMAC maps), built-in batched simulator",
    pattern="smac:<map>",
    make=make,
    catalogue=catalogue,
))
