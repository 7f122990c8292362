"""Unit statistics as tensors: one row per unit type, looked up by each unit's type index.

The simulator reads every statistic through :class:`UnitColumns`. On a fixed SMAC map each unit
slot always holds the same type, so the columns are ``[U]`` vectors built once; on a generated
(SMACv2) scenario the types change per copy and episode, and :meth:`UnitColumns.take` gathers
``[B, U]`` columns from the per-copy type indices. The simulator's code broadcasts either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import torch

from marl.envs.smac.units import LOOPS_PER_SECOND, UnitType


@dataclass(frozen=True)
class UnitColumns:
    """Per-type statistics in simulator units (rates per game loop), indexed ``[..., kind]``."""

    max_health: torch.Tensor
    max_shield: torch.Tensor
    armour: torch.Tensor
    cooldown_loops: torch.Tensor
    range: torch.Tensor  # weapon (or heal) range between unit edges
    speed: torch.Tensor  # distance per game loop
    radius: torch.Tensor
    attacks: torch.Tensor
    heal: torch.Tensor  # health healed per game loop
    healer: torch.Tensor  # bool
    max_energy: torch.Tensor
    start_energy: torch.Tensor
    energy_regen: torch.Tensor
    health_regen: torch.Tensor
    max_cooldown: torch.Tensor  # SMAC's state normaliser
    splash: torch.Tensor  # bool: explodes on its target (Baneling)
    splash_radius: torch.Tensor  # reach of the explosion, to the victims' edges
    ground: torch.Tensor  # bool
    walker: torch.Tensor  # bool: bound to walkable ground (ground units but the Colossus)
    hits_ground: torch.Tensor  # bool: its weapon targets ground units
    hits_air: torch.Tensor  # bool: its weapon targets air units
    scan: torch.Tensor  # the built-in AI's target acquisition range (between edges)
    threatens: torch.Tensor  # bool: the AI ranks it as a threat though it has no weapon
    beam: torch.Tensor  # length of a Colossus's line splash (0: none)
    beam_width: torch.Tensor
    sight: torch.Tensor  # what an agent of this type sees (observation range)
    shoot: torch.Tensor  # centre distance within which its attack action is available
    types: torch.Tensor  # [..., type_bits] the observation's type one-hot

    @classmethod
    def of(cls, units: Sequence[UnitType], type_order: Sequence[str],
           ranges: Sequence[tuple[float, float]], device: torch.device) -> UnitColumns:
        """Columns for ``units``; ``ranges`` holds each one's (sight, attack availability)
        range as the scenario defines them."""

        def col(values: Iterable[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.tensor(list(values), dtype=dtype, device=device)

        types = torch.zeros(len(units), len(type_order), device=device)
        for i, t in enumerate(units):
            if type_order:
                types[i, type_order.index(t.name)] = 1.0
        return cls(
            max_health=col(t.health for t in units),
            max_shield=col(t.shield for t in units),
            armour=col(t.armour for t in units),
            cooldown_loops=col(t.cooldown_loops for t in units),
            range=col(t.range for t in units),
            speed=col(t.speed / LOOPS_PER_SECOND for t in units),
            radius=col(t.radius for t in units),
            attacks=col(float(t.attacks) for t in units),
            heal=col(t.heal_rate / LOOPS_PER_SECOND for t in units),
            healer=col((t.healer for t in units), torch.bool),
            max_energy=col(t.max_energy for t in units),
            start_energy=col(t.start_energy for t in units),
            energy_regen=col(t.energy_regen / LOOPS_PER_SECOND for t in units),
            health_regen=col(t.health_regen / LOOPS_PER_SECOND for t in units),
            max_cooldown=col(t.max_cooldown for t in units),
            splash=col((t.splash_radius > 0 for t in units), torch.bool),
            splash_radius=col(t.splash_radius for t in units),
            ground=col((not t.air for t in units), torch.bool),
            walker=col((not t.air and not t.walks_cliffs for t in units), torch.bool),
            hits_ground=col((t.hits_ground for t in units), torch.bool),
            hits_air=col((t.hits_air for t in units), torch.bool),
            scan=col(max(t.scan, t.range) for t in units),
            threatens=col((t.always_threatens for t in units), torch.bool),
            beam=col(t.beam for t in units),
            beam_width=col(t.beam_width for t in units),
            sight=col(sight for sight, _ in ranges),
            shoot=col(shoot for _, shoot in ranges),
            types=types)

    def take(self, kind: torch.Tensor) -> UnitColumns:
        """The columns of the units whose type indices are ``kind`` (any shape)."""
        return UnitColumns(**{f.name: getattr(self, f.name)[kind] for f in fields(self)})
