"""StarCraft II damage rules as tensor code: per-hit damage tables and landing hits.

A hit deals the attacker's ``damage`` plus its bonus against each attribute the target has.
Shields take hits first and ignore armour; the part of a hit that spills past the shields, and
every later hit, loses the target's armour but always deals at least 0.5 (SC2's floor).

In one game loop a unit may be hit several times. :func:`land_hits` applies ``hits`` hits of
equal size ``raw / hits`` one after the other in closed form, which is exact whenever the hits
landing on a unit in one loop are the same size (one attacker, or attackers of one type);
:func:`land_unshielded_hits` is the same for units without shields, in fewer operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from marl.envs.smac.units import UnitType

MIN_HIT = 0.5  # the least damage a hit does to health, whatever the armour


def hit_table(attackers: Sequence[UnitType], targets: Sequence[UnitType]) -> torch.Tensor:
    """Damage per hit ``[len(attackers), len(targets)]`` (0 for units that do not attack)."""
    return torch.tensor([[a.damage + sum(v for k, v in a.bonus.items() if k in t.attributes)
                          if a.damage > 0 else 0.0 for t in targets] for a in attackers])


def target_table(attackers: Sequence[UnitType], targets: Sequence[UnitType]) -> torch.Tensor:
    """Whether each attacker's weapon can target each unit ``[len(attackers), len(targets)]``
    (bool): ground units by weapons that hit ground, air units by weapons that hit air; units
    without a weapon (healers) target no one."""
    return torch.tensor([[a.damage > 0 and (a.hits_air if t.air else a.hits_ground)
                          for t in targets] for a in attackers], dtype=torch.bool)


def land_hits(health: torch.Tensor, shield: torch.Tensor, armour: torch.Tensor,
              raw: torch.Tensor, hits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """New ``(health, shield)`` after ``hits`` hits totalling ``raw`` damage (before armour)
    land on each unit; all tensors broadcast together. Health is not clamped at 0."""
    hits = hits.to(health.dtype)
    some = hits > 0
    size = torch.where(some, raw / hits.clamp(min=1), torch.zeros_like(raw))
    # hits the shields absorb whole, then the one that breaks them, then hits on health
    whole = torch.where(some, torch.floor(shield / size.clamp(min=1e-9)), torch.zeros_like(raw))
    breaks = whole < hits
    left = shield - whole * size  # shield remaining before the breaking hit (< size)
    spill = (size - left - armour).clamp(min=MIN_HIT)
    later = (hits - whole - 1).clamp(min=0) * (size - armour).clamp(min=MIN_HIT)
    new_shield = torch.where(breaks, torch.zeros_like(shield), shield - raw)
    new_health = torch.where(breaks & some, health - spill - later, health)
    return new_health, new_shield


def land_unshielded_hits(health: torch.Tensor, armour: torch.Tensor, raw: torch.Tensor,
                         hits: torch.Tensor) -> torch.Tensor:
    """:func:`land_hits`' new health for units without shields, to the last bit: each of the
    ``hits`` hits of size ``raw / hits`` loses the armour and deals at least ``MIN_HIT``."""
    hits = hits.to(health.dtype)
    per_hit = (raw / hits.clamp(min=1) - armour).clamp(min=MIN_HIT)
    return torch.where(hits > 0, health - per_hit - (hits - 1) * per_hit, health)
