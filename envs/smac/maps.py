"""The SMAC maps: unit lists, episode limits, type one-hots, and the sizes they give.

Every map of SMAC's registry (``smac/env/starcraft2/maps/smac_maps.py``): which units each side
fields, the episode limit in environment steps, and the unit types the observation's type
one-hot distinguishes (SMAC's ``unit_type_bits``; none on single-type maps). The one-hot order
is SMAC's for allies (e.g. Stalker, Zealot on ``2s3z``); SMAC encodes *enemy* types with
another order on some maps (a known quirk of its custom-map unit ids), which we do not copy:
both sides use the order below.

Each map's ground, spawns, enemy order and allied unit statistics come from its map file
(:mod:`marl.envs.smac.mapdata`).

The sizes follow SMAC's size functions with its default flags (``obs_all_health``,
``obs_own_health``, ``state_last_action`` on; last action in the observation, pathing grid,
terrain height and time step off).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from marl.envs.smac.mapdata import MapData, map_data
from marl.envs.smac.units import UNITS, UnitType

N_MOVE_FEATS = 4  # availability of the four moves
N_BASE_ACTIONS = 6  # no-op, stop, north, south, east, west
SIGHT = 9.0  # SMAC: every unit sees 9
SHOOT = 6.0  # SMAC: a target is available within 6 (centre to centre)


class ScenarioLayout:
    """SMAC's observation, state and action sizes, from a scenario's team sizes and flags.

    A scenario (a fixed :class:`SMACMap`, or a generated SMACv2 one) provides ``n_agents``,
    ``n_enemies``, ``types`` (the type one-hot order, ``()`` without one), ``ally_shield``,
    ``enemy_shield`` and ``own_pos`` (SMACv2: the agent's own position in its features).
    """

    n_agents: int
    n_enemies: int
    types: tuple[str, ...]
    ally_shield: int
    enemy_shield: int
    own_pos: bool

    @property
    def type_bits(self) -> int:
        return len(self.types)

    @property
    def n_actions(self) -> int:
        """No-op, stop, four moves, then one attack (or, for a Medivac, heal) per target."""
        return N_BASE_ACTIONS + self.n_enemies

    @property
    def enemy_feats(self) -> int:
        """Per enemy: attackable, distance, dx, dy, health, (shield), type one-hot."""
        return 4 + 1 + self.enemy_shield + self.type_bits

    @property
    def ally_feats(self) -> int:
        """Per other ally: visible, distance, dx, dy, health, (shield), type one-hot."""
        return 4 + 1 + self.ally_shield + self.type_bits

    @property
    def own_feats(self) -> int:
        """Own health, (shield), (x, y), type one-hot."""
        return 1 + self.ally_shield + 2 * self.own_pos + self.type_bits

    @property
    def obs_size(self) -> int:
        return (N_MOVE_FEATS + self.n_enemies * self.enemy_feats
                + (self.n_agents - 1) * self.ally_feats + self.own_feats)

    @property
    def ally_state_feats(self) -> int:
        """Per ally: health, cooldown (Medivac: energy), x, y, (shield), type one-hot."""
        return 4 + self.ally_shield + self.type_bits

    @property
    def enemy_state_feats(self) -> int:
        """Per enemy: health, x, y, (shield), type one-hot."""
        return 3 + self.enemy_shield + self.type_bits

    @property
    def state_size(self) -> int:
        return (self.n_agents * self.ally_state_feats + self.n_enemies * self.enemy_state_feats
                + self.n_agents * self.n_actions)


@dataclass(frozen=True)
class SMACMap(ScenarioLayout):
    """One scenario: ``allies``/``enemies`` as ``((unit, count), ...)`` in unit-id order. Its
    ground, spawns, enemy order and allied unit statistics come from the map file's table
    (:mod:`marl.envs.smac.mapdata`)."""

    name: str
    allies: tuple[tuple[str, int], ...]
    enemies: tuple[tuple[str, int], ...]
    limit: int
    types: tuple[str, ...] = ()  # type one-hot order; () on single-type maps
    own_pos = False  # SMAC's default flags
    fixed = True  # the same units every episode

    @cached_property
    def data(self) -> MapData:
        return map_data(self.name)

    @cached_property
    def ally_units(self) -> tuple[UnitType, ...]:
        """The allies: the map's ``_RL`` copies of the units."""
        return tuple(self.data.ally_unit(u) for u, k in self.allies for _ in range(k))

    @property
    def enemy_units(self) -> tuple[UnitType, ...]:
        """The enemies: the game's own units."""
        return tuple(UNITS[u] for u, k in self.enemies for _ in range(k))

    @cached_property
    def kinds(self) -> tuple[UnitType, ...]:
        """The distinct unit statistics on the map, each once (the simulator's type indices;
        an allied and an enemy unit of one name differ where the map changes the ally)."""
        kinds: list[UnitType] = []
        for t in self.ally_units + self.enemy_units:
            if t not in kinds:
                kinds.append(t)
        return tuple(kinds)

    @property
    def slot_kinds(self) -> tuple[int, ...]:
        """Each unit slot's type, as an index into :attr:`kinds` (allies first)."""
        return tuple(self.kinds.index(t) for t in self.ally_units + self.enemy_units)

    @property
    def agent_names(self) -> tuple[str, ...]:
        return tuple(f"{t.name}_{i}" for i, t in enumerate(self.ally_units))

    @property
    def n_agents(self) -> int:  # type: ignore[override]
        return sum(k for _, k in self.allies)

    @property
    def n_enemies(self) -> int:  # type: ignore[override]
        return sum(k for _, k in self.enemies)

    @property
    def ally_shield(self) -> int:  # type: ignore[override]
        """1 when the allies are Protoss (their features carry a shield), else 0."""
        return int(self.ally_units[0].race == "P")

    @property
    def enemy_shield(self) -> int:  # type: ignore[override]
        return int(self.enemy_units[0].race == "P")

    def ranges(self, unit: UnitType) -> tuple[float, float]:
        """SMAC: every unit sees 9 and may be ordered to attack a target within 6."""
        return SIGHT, SHOOT

    @cached_property
    def start_positions(self) -> torch.Tensor:
        """``[U, 2]``: where every unit starts, allies first (the map's spawns, spread by
        :mod:`marl.envs.smac.mapdata`'s placement rule)."""
        taken: list[tuple[float, float, float, bool]] = []
        allies = [(t.name, t) for t in self.ally_units]
        enemies = [(t.name, t) for t in self.enemy_units]
        pos = (self.data.placements(allies, self.data.ally_spawns, taken)
               + self.data.placements(enemies, self.data.enemy_spawns, taken))
        return torch.tensor(pos, dtype=torch.float32)

    @property
    def attack_point(self) -> tuple[float, float] | None:
        """Where the map's script sends the enemies (attack-move); the middle of the two
        ends where it draws a point between them, None where it sends them at the allies'
        units or nowhere."""
        points = self.data.order_points
        if self.data.order == "point":
            return points[0]
        if self.data.order == "between":
            return ((points[0][0] + points[1][0]) / 2, (points[0][1] + points[1][1]) / 2)
        return None

    def draw(self, b: int, generator: torch.Generator,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit types ``[b, U]`` (indices into :attr:`kinds`) and starting positions
        ``[b, U, 2]`` of ``b`` new battles: the map's, the same every episode."""
        kind = torch.tensor(self.slot_kinds, device=device)
        return kind.expand(b, -1), self.start_positions.to(device).expand(b, -1, -1).clone()


def _same(name: str, units: tuple[tuple[str, int], ...], limit: int,
          types: tuple[str, ...] = ()) -> SMACMap:
    return SMACMap(name, units, units, limit, types)


_SZ = ("stalker", "zealot")
_MMM = ("marauder", "marine", "medivac")
MAPS: dict[str, SMACMap] = {m.name: m for m in (
    _same("3m", (("marine", 3),), 60),
    _same("8m", (("marine", 8),), 120),
    _same("25m", (("marine", 25),), 150),
    SMACMap("5m_vs_6m", (("marine", 5),), (("marine", 6),), 70),
    SMACMap("8m_vs_9m", (("marine", 8),), (("marine", 9),), 120),
    SMACMap("10m_vs_11m", (("marine", 10),), (("marine", 11),), 150),
    SMACMap("27m_vs_30m", (("marine", 27),), (("marine", 30),), 180),
    SMACMap("2m_vs_1z", (("marine", 2),), (("zealot", 1),), 150),
    _same("2s3z", (("stalker", 2), ("zealot", 3)), 120, _SZ),
    _same("3s5z", (("stalker", 3), ("zealot", 5)), 150, _SZ),
    SMACMap("3s5z_vs_3s6z", (("stalker", 3), ("zealot", 5)), (("stalker", 3), ("zealot", 6)),
            170, _SZ),
    _same("1c3s5z", (("colossus", 1), ("stalker", 3), ("zealot", 5)), 180,
          ("colossus", "stalker", "zealot")),
    _same("MMM", (("marauder", 2), ("marine", 7), ("medivac", 1)), 150, _MMM),
    SMACMap("MMM2", (("marauder", 2), ("marine", 7), ("medivac", 1)),
            (("marauder", 3), ("marine", 8), ("medivac", 1)), 180, _MMM),
    SMACMap("3s_vs_3z", (("stalker", 3),), (("zealot", 3),), 150),
    SMACMap("3s_vs_4z", (("stalker", 3),), (("zealot", 4),), 200),
    SMACMap("3s_vs_5z", (("stalker", 3),), (("zealot", 5),), 250),
    SMACMap("2s_vs_1sc", (("stalker", 2),), (("spine_crawler", 1),), 300),
    SMACMap("corridor", (("zealot", 6),), (("zergling", 24),), 400),
    SMACMap("6h_vs_8z", (("hydralisk", 6),), (("zealot", 8),), 150),
    _same("bane_vs_bane", (("baneling", 4), ("zergling", 20)), 200, ("baneling", "zergling")),
    SMACMap("so_many_baneling", (("zealot", 7),), (("baneling", 32),), 100),
    SMACMap("2c_vs_64zg", (("colossus", 2),), (("zergling", 64),), 400),
)}
