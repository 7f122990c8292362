"""StarCraft II unit statistics for the SMAC maps (Legacy of the Void values).

Combat statistics follow Liquipedia's LotV tables (as collected in SMAClite's unit files):
times and speeds are at the game's *Faster* speed, which runs 22.4 game loops per second; a
SMAC environment step is 8 game loops. ``max_cooldown`` is SMAC's own normaliser for the
weapon cooldown in the global state (game loops; the Medivac's entry is its energy maximum).
``max_shield`` is SMAC's shield normaliser (the unit's shield maximum).

Damage follows SC2's rules: ``damage + bonus[attribute]`` per attack (``attacks`` hits per
shot), shields absorb first without armour, then health takes ``max(hit - armour, 0.5)``.

Targeting follows SC2's weapon filters: Marines, Stalkers and Hydralisks hit ground and air;
Marauders, Zealots, Zerglings, Banelings, Colossi and Spine Crawlers hit ground only, so no one
but the former can attack a Medivac (air). ``scan`` is the range within which a unit of the
built-in AI acquires targets by itself (its weapon's scan range; SMAClite's
``minimum_scan_range`` of 5, or the weapon's range when longer, 10 for the Spine Crawler).
The Colossus's Thermal Lances hit a line ``beam`` long and ``beam_width`` wide across the
target, perpendicular to the shot (SMAClite's LASER_BEAM 2.8 × 0.3); a Baneling's splash
reaches every unit whose edge is within ``splash_radius`` of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOOPS_PER_SECOND = 22.4  # game loops per second at the Faster game speed
STEP_LOOPS = 8  # game loops per environment step (SMAC's step_mul)
MELEE_RANGE = 0.1  # attack range of melee units (SC2 lists them as range 0.1)


@dataclass(frozen=True)
class UnitType:
    """One unit type: race, vitals, weapon, movement and SMAC's normalisers."""

    name: str
    race: str  # "T" (Terran), "P" (Protoss), "Z" (Zerg)
    health: float
    shield: float
    armour: float
    damage: float  # per hit; healers heal instead (``heal_rate``)
    attacks: int  # hits per shot (Zealot, Colossus: 2)
    cooldown: float  # seconds between shots (Faster speed)
    range: float  # attack (or heal) range, between unit edges
    speed: float  # distance per second (Faster speed)
    radius: float
    attributes: frozenset[str]
    max_cooldown: float  # SMAC's state normaliser of the cooldown, in game loops
    bonus: dict[str, float] = field(default_factory=dict)  # extra damage vs an attribute
    air: bool = False
    heal_rate: float = 0.0  # health per second healed (Medivac), costs 1 energy per 3 health
    max_energy: float = 0.0
    start_energy: float = 0.0
    energy_regen: float = 0.0  # energy per second
    health_regen: float = 0.0  # health per second (Zerg)
    splash_radius: float = 0.0  # Baneling: damage to every enemy within it, then it dies
    sight: float = 9.0  # SC2 sight range; SMAC gives every unit 9, SMACv2 uses this
    hits_ground: bool = True  # its weapon targets ground units
    hits_air: bool = False  # its weapon targets air units (the Medivac)
    scan: float = 5.0  # the built-in AI acquires targets within this range (between edges)
    beam: float = 0.0  # Colossus: length of the line its shots hit, across the target
    beam_width: float = 0.0
    walks_cliffs: bool = False  # Colossus: walks over cliffs (the map's ground does not bind it)
    # the built-in AI ranks it with the units that can hurt it though it has no weapon (SC2's
    # AlwaysThreatens flag: the Medivac, as SMAC's own Medivac_RL copies carry it)
    always_threatens: bool = False

    @property
    def healer(self) -> bool:
        return self.heal_rate > 0

    @property
    def cooldown_loops(self) -> float:
        return self.cooldown * LOOPS_PER_SECOND

    @property
    def step_distance(self) -> float:
        """Distance covered in one environment step (8 game loops) at full speed."""
        return self.speed * STEP_LOOPS / LOOPS_PER_SECOND


def _unit(name: str, race: str, health: float, shield: float, armour: float, damage: float,
          attacks: int, cooldown: float, range_: float, speed: float, radius: float,
          attributes: tuple[str, ...], max_cooldown: float, **extra: object) -> UnitType:
    return UnitType(name, race, health, shield, armour, damage, attacks, cooldown, range_,
                    speed, radius, frozenset(attributes), max_cooldown, **extra)  # type: ignore[arg-type]


UNITS: dict[str, UnitType] = {u.name: u for u in (
    _unit("marine", "T", 45, 0, 0, 6, 1, 0.61, 5, 3.15, 0.375, ("light", "biological"), 15,
          sight=9, hits_air=True),
    _unit("marauder", "T", 125, 0, 1, 10, 1, 1.07, 6, 3.15, 0.5625, ("armoured", "biological"),
          25, bonus={"armoured": 10}, sight=10, scan=6),
    _unit("medivac", "T", 150, 0, 1, 0, 0, 0.0, 4, 3.5, 0.75, ("armoured", "mechanical"), 200,
          air=True, heal_rate=12.6, max_energy=200, start_energy=50, energy_regen=0.7875,
          sight=11, hits_ground=False, scan=4, always_threatens=True),
    _unit("stalker", "P", 80, 80, 1, 13, 1, 1.34, 6, 4.13, 0.625, ("armoured", "mechanical"), 35,
          bonus={"armoured": 5}, sight=10, hits_air=True, scan=6),
    _unit("zealot", "P", 100, 50, 1, 8, 2, 0.86, MELEE_RANGE, 3.15, 0.5,
          ("light", "biological"), 22, sight=9),
    _unit("colossus", "P", 200, 150, 1, 10, 2, 1.07, 7, 3.15, 1.0,
          ("armoured", "mechanical", "massive"), 24, bonus={"light": 5}, sight=10, scan=7,
          beam=2.8, beam_width=0.3, walks_cliffs=True),
    _unit("zergling", "Z", 35, 0, 0, 5, 1, 0.497, MELEE_RANGE, 4.13, 0.375,
          ("light", "biological"), 11, health_regen=0.38, sight=8),
    _unit("baneling", "Z", 30, 0, 0, 16, 1, 0.833, 0.25, 3.5, 0.375, ("biological",), 1,
          bonus={"light": 19}, splash_radius=2.2, health_regen=0.38, sight=8),
    _unit("hydralisk", "Z", 90, 0, 0, 12, 1, 0.59, 5, 3.15, 0.625, ("light", "biological"), 10,
          health_regen=0.38, sight=9, hits_air=True),
    # enemy-only: SMAC has no cooldown normaliser for it (enemy state rows carry no cooldown)
    _unit("spine_crawler", "Z", 300, 0, 2, 25, 1, 1.32, 7, 0.0, 1.0,
          ("armoured", "biological", "structure"), 1.32 * LOOPS_PER_SECOND,
          bonus={"armoured": 5}, sight=11, scan=10),
)}
