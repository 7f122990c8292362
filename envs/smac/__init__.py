"""StarCraft Multi-Agent Challenge (SMAC) scenarios: unit statistics, maps, damage rules.

``marl.envs.smac.units`` holds the StarCraft II unit statistics the SMAC maps use,
``marl.envs.smac.maps`` the maps themselves (unit lists, episode limits, and the observation,
state and action sizes they give under SMAC's default flags), and ``marl.envs.smac.combat``
SC2's damage rules (bonuses, shields before armour) as tensor code; ``marl.envs.smac.env`` the
batched simulator (its docstring is the card: interface, dynamics, the enemy AI's rule).

Ids: ``smac:<map>`` for every map of :data:`MAPS`; ``smacv2:<race>_<n>_vs_<m>`` for SMACv2-style
generated scenarios (:mod:`marl.envs.smac.generated`), e.g. ``smacv2:protoss_5_vs_5``; the
catalogue lists SMACv2's published sizes (5_vs_5, 10_vs_10, 20_vs_20, 10_vs_11, 20_vs_23) for
each race, and any ``n <= m`` works; ``sc2:<map>`` for the same maps in the real game
(:mod:`marl.envs.smac.sc2`).

Versions
--------
- v1: 32 × 32 ground, walls where the map has them (``corridor``), SMAC's interface with
  default flags. smacv2: SMACv2's team and start distributions and its configured flags
  (own position, per-type sight and attack ranges).
- v2: the maps as their files define them (ground, spawns, the enemies' order, the allies'
  unit statistics), SC2's targeting for the enemy (scan, keep, retaliate), air and ground
  targeting, the Colossus's line splash, Baneling splash to unit edges, SC2's random weapon
  delay. smacv2: the same rules, SMACv2's periodic order onto idle enemies, the reward
  clipped at 0.
- v3: the enemy ranks the Medivac with the units that can hurt it (SC2's ``AlwaysThreatens``);
  v2's enemy targeting and weapons as they were corrected after v2 was declared: a unit walks
  0.01 inside its weapon's range and range is taken after the loop's move (melee units in a
  crowd strike at their weapon's rate), and an acquired target is kept only while it is within
  the enemy's weapon range, not its scan range. smacv2: the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import torch

from marl.envs.registry import EnvFamily, check_kwargs, register_family, unknown_id
from marl.envs.smac.env import SMACEnv, SMACState
from marl.envs.smac.generated import RACES, SIZES, GeneratedScenario
from marl.envs.smac.maps import MAPS, SMACMap

__all__ = ["MAPS", "GeneratedScenario", "SMACEnv", "SMACMap", "SMACState"]


def _build(env_id: str, cls: type, scenario: Any, num_envs: int, device: str | torch.device,
           kwargs: dict[str, Any]) -> Any:
    check_kwargs(env_id, cls, kwargs, reserved=("scenario", "num_envs", "device"))
    return cls(scenario, num_envs, device, **kwargs)


def make(name: str, num_envs: int = 1, device: str | torch.device = "cpu",
         **kwargs: Any) -> SMACEnv:
    """``smac:<map>`` as a batched environment."""
    if name not in MAPS:
        raise unknown_id(f"smac:{name}", "SMAC ids are smac:<map>, e.g. smac:3m")
    return _build(f"smac:{name}", SMACEnv, MAPS[name], num_envs, device, kwargs)


def catalogue() -> Iterator[str]:
    """Every SMAC map."""
    return iter(MAPS)


def make_generated(name: str, num_envs: int = 1, device: str | torch.device = "cpu",
                   **kwargs: Any) -> SMACEnv:
    """``smacv2:<race>_<n>_vs_<m>`` as a batched environment."""
    match = re.fullmatch(r"(\w+?)_(\d+)_vs_(\d+)", name)
    if match is None or match[1] not in RACES or not 1 <= int(match[2]) <= int(match[3]):
        raise unknown_id(f"smacv2:{name}", "SMACv2 ids are smacv2:<race>_<n>_vs_<m> with race "
                         f"one of {sorted(RACES)} and 1 <= n <= m, e.g. smacv2:protoss_5_vs_5")
    scenario = GeneratedScenario(match[1], int(match[2]), int(match[3]))
    return _build(f"smacv2:{name}", SMACEnv, scenario, num_envs, device, kwargs)


def catalogue_generated() -> Iterator[str]:
    """SMACv2's published scenarios for every race."""
    return (f"{race}_{n}_vs_{m}" for race in RACES for n, m in SIZES)


def make_sc2(name: str, num_envs: int = 1, device: str | torch.device = "cpu",
             **kwargs: Any) -> Any:
    """``sc2:<map>``: the map in the real game (needs pysc2, StarCraft II and SMAC's maps)."""
    from marl.envs.smac.sc2 import SC2Env

    if name not in MAPS:
        raise unknown_id(f"sc2:{name}", "StarCraft II ids are sc2:<SMAC map>, e.g. sc2:3m")
    return _build(f"sc2:{name}", SC2Env, MAPS[name], num_envs, device, kwargs)


register_family(EnvFamily(
    prefix="smacv2",
    summary="SMACv2-style generated StarCraft battles (random unit types and starts)",
    pattern="smacv2:<race>_<n>_vs_<m>",
    make=make_generated,
    version=3,  # the card's Versions
    catalogue=catalogue_generated,
))

register_family(EnvFamily(
    prefix="sc2",
    summary="SMAC maps in the real StarCraft II game via pysc2 (extra 'sc2'; needs the game)",
    pattern="sc2:<map>",
    make=make_sc2,
    version=1,  # the card's Versions
    catalogue=catalogue,
))

register_family(EnvFamily(
    prefix="smac",
    summary="StarCraft micromanagement (SMAC maps), built-in batched simulator",
    pattern="smac:<map>",
    make=make,
    version=3,  # the card's Versions
    catalogue=catalogue,
))
