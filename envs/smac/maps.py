"""The SMAC maps: unit lists, episode limits, type one-hots, and the sizes they give.

Every map of SMAC's registry (``smac/env/starcraft2/maps/smac_maps.py``): which units each side
fields, the episode limit in environment steps, and the unit types the observation's type
one-hot distinguishes (SMAC's ``unit_type_bits``; none on single-type maps). The one-hot order
is SMAC's for allies (e.g. Stalker, Zealot on ``2s3z``); SMAC encodes *enemy* types with
another order on some maps (a known quirk of its custom-map unit ids), which we do not copy:
both sides use the order below.

Maps are 32 × 32 units; ``walls`` lists the cells (1 × 1) units cannot enter, if any.

The sizes follow SMAC's size functions with its default flags (``obs_all_health``,
``obs_own_health``, ``state_last_action`` on; last action in the observation, pathing grid,
terrain height and time step off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

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


def block(n: int, centre: tuple[float, float], spacing: float) -> torch.Tensor:
    """``n`` positions ``[n, 2]`` in a roughly square block around ``centre``."""
    cols = math.ceil(math.sqrt(n))
    i = torch.arange(n)
    x = (i // cols).float() - (math.ceil(n / cols) - 1) / 2
    y = (i % cols).float() - (min(n, cols) - 1) / 2
    return torch.stack([centre[0] + x * spacing, centre[1] + y * spacing], dim=-1)


@dataclass(frozen=True)
class SMACMap(ScenarioLayout):
    """One scenario: ``allies``/``enemies`` as ``((unit, count), ...)`` in unit-id order."""

    name: str
    allies: tuple[tuple[str, int], ...]
    enemies: tuple[tuple[str, int], ...]
    limit: int
    types: tuple[str, ...] = ()  # type one-hot order; () on single-type maps
    ally_start: tuple[float, float] = (9.0, 16.0)  # centre of the allies' starting block
    enemy_start: tuple[float, float] = (23.0, 16.0)
    walls: tuple[tuple[int, int, int, int], ...] = ()  # unwalkable cells [x0, x1) × [y0, y1)
    own_pos = False  # SMAC's default flags
    fixed = True  # the same units every episode

    @property
    def ally_units(self) -> tuple[UnitType, ...]:
        return tuple(UNITS[u] for u, k in self.allies for _ in range(k))

    @property
    def enemy_units(self) -> tuple[UnitType, ...]:
        return tuple(UNITS[u] for u, k in self.enemies for _ in range(k))

    @property
    def kinds(self) -> tuple[UnitType, ...]:
        """The unit types on the map, each once (the simulator's type indices)."""
        names = dict.fromkeys(u for u, _ in self.allies + self.enemies)
        return tuple(UNITS[u] for u in names)

    @property
    def slot_kinds(self) -> tuple[int, ...]:
        """Each unit slot's type, as an index into :attr:`kinds` (allies first)."""
        names = [t.name for t in self.kinds]
        return tuple(names.index(t.name) for t in self.ally_units + self.enemy_units)

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

    def draw(self, b: int, generator: torch.Generator,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit types ``[b, U]`` (indices into :attr:`kinds`) and starting positions
        ``[b, U, 2]`` of ``b`` new battles: each side in a block (1.5 apart) around its start,
        each unit jittered uniformly by ±0.5."""
        kind = torch.tensor(self.slot_kinds, device=device)
        start = torch.cat([block(self.n_agents, self.ally_start, 1.5),
                           block(self.n_enemies, self.enemy_start, 1.5)]).to(device)
        jitter = torch.rand(b, len(kind), 2, generator=generator, device=device) - 0.5
        return kind.expand(b, -1), start + jitter


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
    # open ground on both ends joined by a passage 5 cells wide and 10 long (our layout: the
    # SMAC map file is not available here)
    SMACMap("corridor", (("zealot", 6),), (("zergling", 24),), 400, ally_start=(6.0, 16.0),
            enemy_start=(26.0, 16.0), walls=((11, 21, 0, 14), (11, 21, 19, 32))),
    SMACMap("6h_vs_8z", (("hydralisk", 6),), (("zealot", 8),), 150),
    _same("bane_vs_bane", (("baneling", 4), ("zergling", 20)), 200, ("baneling", "zergling")),
    SMACMap("so_many_baneling", (("zealot", 7),), (("baneling", 32),), 100),
    SMACMap("2c_vs_64zg", (("colossus", 2),), (("zergling", 64),), 400),
)}
