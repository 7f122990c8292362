"""The SMAC maps as their map files define them: ground, spawns, the enemy's order, unit data.

``mapdata/<map>.json`` are tables that ``scripts/extract_smac_maps.py`` reads out of SMAC's
``.SC2Map`` files (its docstring says which layer of the file is which); the package needs only
the tables. :func:`map_data` turns one into a :class:`MapData`.

Units
    The allies are the map's ``_RL`` copies of the units (passive: they never act on their
    own), whose statistics the map's ``UnitData.xml`` sets; the enemies are the game's own
    units, which the map does not change. :meth:`MapData.ally_unit` lays the map's values
    over :data:`marl.envs.smac.units.UNITS` (e.g. the allied Hydralisk's 80 health, the
    allied Medivac's speed). The file's speeds and regeneration rates are per game second at
    the Normal game speed; the Faster speed SMAC plays at runs 1.4 times as fast.

Spawns
    The map's script creates each side's units at named points. Units created on one point
    are spread as the game places them: each in turn takes the free spot closest to the
    point — on the 1/8 grid around it, on walkable ground (ground units), not overlapping a
    unit placed before it (ground units with ground units, air with air; edges may touch),
    ties broken by angle. Positions are the same every episode, as in the game.

The enemy's order
    The map's script gives every enemy one order when the units are created: attack-move to
    a point (most maps), to a random point between two (``2m_vs_1z``: drawn per episode),
    attack the allies' units (``2c_vs_64zg``), or none (``2s_vs_1sc``: a Spine Crawler).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import torch

from marl.envs.smac.units import UNITS, UnitType

FASTER = 1.4  # the Faster game speed's game seconds per Normal game second
PLACEMENT_STEP = 0.125  # the grid spawned units are placed on
PLACEMENT_REACH = 12.0  # how far from its point a unit may be placed

# UnitData.xml fields laid over the unit statistics: (field, UnitType attribute, scale)
_FIELDS = (("LifeMax", "health", 1.0), ("ShieldsMax", "shield", 1.0),
           ("LifeArmor", "armour", 1.0), ("Speed", "speed", FASTER), ("Sight", "sight", 1.0),
           ("Radius", "radius", 1.0), ("LifeRegenRate", "health_regen", FASTER),
           ("EnergyMax", "max_energy", 1.0), ("EnergyStart", "start_energy", 1.0),
           ("EnergyRegenRate", "energy_regen", FASTER))


@dataclass(frozen=True)
class Spawn:
    """Units the map's script creates on one point: ``{unit: count}``."""

    point: tuple[float, float]
    units: dict[str, int]


@dataclass(frozen=True)
class MapData:
    """One SMAC map's file data (module doc)."""

    name: str
    size: tuple[int, int]  # cells (x, y)
    playable: tuple[float, float, float, float]  # x0, y0, x1, y1
    pathable: tuple[str, ...]  # row y: one "1" (walkable) or "0" per x
    ally_spawns: tuple[Spawn, ...]
    enemy_spawns: tuple[Spawn, ...]
    order: str  # point | between | units | none
    order_points: tuple[tuple[float, float], ...]  # the point, or the two ends
    ally_fields: dict[str, dict[str, Any]]  # the allied units' UnitData.xml fields

    @property
    def walkable(self) -> torch.Tensor:
        """``[X, Y]`` bool: ground units may stand on cell ``(x, y)``."""
        return torch.tensor([[c == "1" for c in row] for row in self.pathable]).T.contiguous()

    def ally_unit(self, name: str) -> UnitType:
        """The allied ``name`` as the map defines it (module doc)."""
        fields = self.ally_fields.get(name, {})
        changes: dict[str, Any] = {attr: float(fields[key]) * scale
                                   for key, attr, scale in _FIELDS if key in fields}
        return dataclasses.replace(UNITS[name], **changes)

    def placements(self, units: list[tuple[str, UnitType]], spawns: tuple[Spawn, ...],
                   taken: list[tuple[float, float, float, bool]]) -> list[tuple[float, float]]:
        """Start positions of ``units`` (``(name, type)`` in slot order): each goes to the
        next spawn point that creates one of its name, spread by the placement rule.
        ``taken`` (x, y, radius, air) holds the units placed before and grows."""
        left = [dict(s.units) for s in spawns]
        walkable = self.walkable
        out = []
        for name, unit in units:
            i = next((i for i, c in enumerate(left) if c.get(name, 0) > 0), None)
            if i is None:
                raise ValueError(f"smac:{self.name}: the map file spawns no more {name} than "
                                 f"{sum(s.units.get(name, 0) for s in spawns)}")
            left[i][name] -= 1
            xy = _free_spot(spawns[i].point, unit, walkable, taken)
            taken.append((*xy, unit.radius, unit.air))
            out.append(xy)
        return out


def _free_spot(point: tuple[float, float], unit: UnitType, walkable: torch.Tensor,
               taken: list[tuple[float, float, float, bool]]) -> tuple[float, float]:
    """The free spot closest to ``point`` for ``unit`` (the placement rule, module doc)."""
    reach = int(PLACEMENT_REACH / PLACEMENT_STEP)
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float64) * PLACEMENT_STEP
    dx, dy = torch.meshgrid(offsets, offsets, indexing="ij")
    x, y = point[0] + dx.reshape(-1), point[1] + dy.reshape(-1)
    size = walkable.shape
    ok = (x >= 0) & (x < size[0]) & (y >= 0) & (y < size[1])
    if not unit.air:
        ok &= walkable[x.clamp(0, size[0] - 1).long(), y.clamp(0, size[1] - 1).long()]
    for tx, ty, radius, air in taken:
        if air == unit.air:
            ok &= (x - tx) ** 2 + (y - ty) ** 2 >= (radius + unit.radius) ** 2 - 1e-9
    if not bool(ok.any()):
        raise ValueError(f"no room for a {unit.name} within {PLACEMENT_REACH} of {point}")
    order = (dx.reshape(-1) ** 2 + dy.reshape(-1) ** 2) * 1e3 + torch.atan2(
        dy.reshape(-1), dx.reshape(-1)) % (2 * math.pi)
    best = int(order.masked_fill(~ok, math.inf).argmin())
    return float(x[best]), float(y[best])


def shipped_maps() -> list[str]:
    """The maps whose tables the package ships."""
    folder = resources.files("marl.envs.smac").joinpath("mapdata")
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir()
                  if p.name.endswith(".json"))


@cache
def map_data(name: str) -> MapData:
    """The shipped table of the SMAC map ``name``."""
    path = resources.files("marl.envs.smac").joinpath("mapdata").joinpath(f"{name}.json")
    if not path.is_file():
        raise ValueError(f"no map data is shipped for {name!r}; maps: "
                         f"{', '.join(shipped_maps())}")
    raw = json.loads(path.read_text())

    def spawns(side: str) -> tuple[Spawn, ...]:
        return tuple(Spawn((float(s["point"][0]), float(s["point"][1])), dict(s["units"]))
                     for s in raw["spawns"][side])

    order = "none"
    points: list[list[float]] = []
    for o in raw["orders"]:
        if o["player"] != 2 or o.get("only_idle"):
            continue  # SMACv2's periodic order is the generated scenarios' rule
        target = o["target"]
        if target["kind"] == "point":
            order, points = "point", [target["point"]]
        elif target["kind"] == "random_point_between":
            order, points = "between", list(target["points"])
        elif target["kind"] == "unit_group":
            order = "units"
        else:
            raise ValueError(f"smac:{name}: unknown enemy order {target['kind']!r}")
    return MapData(
        name=name, size=tuple(raw["size"]), playable=tuple(raw["playable"]),
        pathable=tuple(raw["pathable"]), ally_spawns=spawns("ally"),
        enemy_spawns=spawns("enemy"), order=order,
        order_points=tuple((float(p[0]), float(p[1])) for p in points),
        ally_fields={u: f for u, f in raw["units"].get("ally", {}).items()})
