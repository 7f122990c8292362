"""What several players in one ``crafter`` world need beyond the engine: the action table with
``give_<item>``, mobs that hunt the nearest living player, the action mask, and the symbolic
view. The engine's own rules (``crafter.objects.Player.update`` and the mobs' ``update``) are
used as they are."""

from __future__ import annotations

from typing import Any

import numpy as np

# Crafter's 17 actions (crafter/data.yaml), then handing one unit to the player one faces
CRAFTER_ACTIONS = (
    "noop", "move_left", "move_right", "move_up", "move_down", "do", "sleep", "place_stone",
    "place_table", "place_furnace", "place_plant", "make_wood_pickaxe", "make_stone_pickaxe",
    "make_iron_pickaxe", "make_wood_sword", "make_stone_sword", "make_iron_sword")
GIVE_ITEMS = ("wood", "stone", "coal", "iron", "diamond", "sapling")
ACTIONS = CRAFTER_ACTIONS + tuple(f"give_{item}" for item in GIVE_ITEMS)
ACHIEVEMENTS = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling",
    "collect_stone", "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow",
    "eat_plant", "make_iron_pickaxe", "make_iron_sword", "make_stone_pickaxe",
    "make_stone_sword", "make_wood_pickaxe", "make_wood_sword", "place_furnace",
    "place_plant", "place_stone", "place_table", "wake_up")
VITALS = ("health", "food", "drink", "energy")
INVENTORY = ("sapling", "wood", "stone", "coal", "iron", "diamond", "wood_pickaxe",
             "stone_pickaxe", "iron_pickaxe", "wood_sword", "stone_sword", "iron_sword")
OBJECT_KINDS = ("Player", "Cow", "Zombie", "Skeleton", "Arrow", "Plant")
ITEM_MAX = 9  # every item's maximum in Crafter


class NearestPlayer:
    """Stands for a mob's ``player``: reading or writing it reaches the living player nearest
    the mob *now* (Manhattan distance, as the engine measures; ties go to the lower index).
    With one player it is that player, so the engine's mobs behave exactly as in Crafter."""

    def __init__(self, players: list[Any], mob: Any) -> None:
        self._players, self._mob = players, mob

    def _target(self) -> Any:
        living = [p for p in self._players if p.health > 0 and not p.removed]
        pool = living or self._players
        return min(pool, key=lambda p: int(np.abs(p.pos - self._mob.pos).sum()))

    @property
    def pos(self) -> np.ndarray:
        return self._target().pos

    @property
    def sleeping(self) -> bool:
        return bool(self._target().sleeping)

    @property
    def health(self) -> int:
        return self._target().health

    @health.setter
    def health(self, value: int) -> None:
        self._target().health = value


def facing_cell(player: Any) -> tuple[int, int]:
    return int(player.pos[0] + player.facing[0]), int(player.pos[1] + player.facing[1])


def give(world: Any, player: Any, item: str) -> bool:
    """Hand one ``item`` to the player ``player`` faces; nothing happens when no living player
    is there, the giver has none, or the receiver holds the maximum (9). Returns whether one
    unit moved."""
    _, other = world[facing_cell(player)]
    if other is None or type(other).__name__ != "Player" or other.health <= 0:
        return False
    if player.inventory[item] < 1 or other.inventory[item] >= ITEM_MAX:
        return False
    player.inventory[item] -= 1
    other.inventory[item] += 1
    return True


def available(world: Any, player: Any, players: list[Any], constants: Any) -> np.ndarray:
    """The action mask ``[len(ACTIONS)]`` (1 = available): placing and making need what the
    engine checks (materials in the inventory, the cell faced, a table or furnace nearby),
    giving needs a living player faced, something to give and room for it; moving, ``do``,
    ``sleep`` and ``noop`` are always available (while a player sleeps the engine turns every
    action into sleep until its energy is full)."""
    mask = np.ones(len(ACTIONS), np.int8)
    target = facing_cell(player)
    material, obj = world[target]
    nearby, _ = world.nearby(player.pos, 1)
    for name, info in constants.place.items():
        ok = (obj is None and material in info["where"]
              and all(player.inventory[k] >= v for k, v in info["uses"].items()))
        mask[ACTIONS.index(f"place_{name}")] = ok
    for name, info in constants.make.items():
        ok = (all(util in nearby for util in info["nearby"])
              and all(player.inventory[k] >= v for k, v in info["uses"].items()))
        mask[ACTIONS.index(f"make_{name}")] = ok
    receiver = obj if obj is not None and obj in players and obj.health > 0 else None
    for item in GIVE_ITEMS:
        ok = (receiver is not None and player.inventory[item] >= 1
              and receiver.inventory[item] < ITEM_MAX)
        mask[ACTIONS.index(f"give_{item}")] = ok
    return mask


def symbolic_view(world: Any, player: Any, grid: tuple[int, int],
                  constants: Any) -> np.ndarray:
    """The player's local ``grid`` (9 × 7 cells, centred on it) as one-hot materials then
    one-hot objects per cell (x-major), then the inventory and the vitals over 9, the facing
    direction one-hot (left, right, up, down), the daylight and whether it sleeps. Cells
    outside the world are all zeros. Float32, in [0, 1]."""
    materials = list(constants.materials)
    w, h = grid
    cells = np.zeros((w, h, len(materials) + len(OBJECT_KINDS)), np.float32)
    x0, y0 = int(player.pos[0]) - w // 2, int(player.pos[1]) - h // 2
    area = world.area
    for dx in range(w):
        for dy in range(h):
            x, y = x0 + dx, y0 + dy
            if not (0 <= x < area[0] and 0 <= y < area[1]):
                continue
            material, obj = world[(x, y)]
            if material in materials:
                cells[dx, dy, materials.index(material)] = 1.0
            if obj is not None and type(obj).__name__ in OBJECT_KINDS:
                cells[dx, dy, len(materials) + OBJECT_KINDS.index(type(obj).__name__)] = 1.0
    inventory = [player.inventory[k] / ITEM_MAX for k in INVENTORY]
    vitals = [player.inventory[k] / ITEM_MAX for k in VITALS]
    facing = [float(tuple(player.facing) == d) for d in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    return np.concatenate([cells.reshape(-1), inventory, vitals, facing,
                           [float(world.daylight), float(player.sleeping)]]).astype(np.float32)


class QuietWorld:
    """The world as a view sees it, with a generator of its own: drawing the whole map at night
    must not draw from the world's generator, which the dynamics use."""

    def __init__(self, world: Any) -> None:
        self._world = world
        self.random = np.random.RandomState(0)

    def __getitem__(self, pos: Any) -> Any:
        return self._world[pos]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._world, name)


# DAMCS's MAC reward (its released env.py): difficulty per achievement, value per item unit
MAC_DIFFICULTY = {
    "collect_wood": 5, "collect_sapling": 1, "place_plant": 0, "eat_plant": 0,
    "collect_stone": 50, "make_wood_pickaxe": 20, "make_wood_sword": 0, "collect_coal": 50,
    "collect_iron": 50, "make_stone_pickaxe": 30, "make_stone_sword": 0, "place_table": 10,
    "place_furnace": 5, "collect_drink": 1, "wake_up": 0, "make_iron_pickaxe": 7,
    "make_iron_sword": 0, "eat_cow": 1, "collect_diamond": 10, "place_stone": 1,
    "defeat_zombie": 0, "defeat_skeleton": 0}
MAC_ITEM_VALUE = {"wood": 5, "stone": 20, "coal": 20, "iron": 50, "diamond": 100}
TEXT_MAX = 4096  # characters of a text observation
_DIRECTIONS = {(-1, 0): "left", (1, 0): "right", (0, -1): "up", (0, 1): "down"}


def _offset(dx: int, dy: int) -> str:
    """``(2, -1)`` → ``"2 right, 1 up"``; ``(0, 0)`` → ``"here"``."""
    parts = []
    if dx:
        parts.append(f"{abs(dx)} {'right' if dx > 0 else 'left'}")
    if dy:
        parts.append(f"{abs(dy)} {'down' if dy > 0 else 'up'}")
    return ", ".join(parts) or "here"


def describe(world: Any, player: Any, players: list[Any], last_actions: list[str],
             grid: tuple[int, int]) -> str:
    """A short, deterministic description of what ``player`` knows, for language models:
    vitals, inventory, time of day, every object in its 9 × 7 view and the nearest cell of
    each material there (offsets right/left and down/up from the player), and its teammates
    with their last actions. The same state gives the same text."""
    me = players.index(player)
    x0, y0 = int(player.pos[0]), int(player.pos[1])
    facing = (int(player.facing[0]), int(player.facing[1]))
    lines = [f"You are player_{me}, facing {_DIRECTIONS[facing]}"
             + (", asleep." if player.sleeping else ".")]
    lines.append("Vitals: " + ", ".join(f"{k} {player.inventory[k]}/{ITEM_MAX}"
                                        for k in VITALS) + ".")
    held = [f"{k} {player.inventory[k]}" for k in INVENTORY if player.inventory[k] > 0]
    lines.append("Inventory: " + (", ".join(held) if held else "nothing") + ".")
    light = float(world.daylight)
    lines.append(f"Daylight {light:.2f} ({'day' if light >= 0.5 else 'night'}).")
    w, h = grid
    nearest: dict[str, tuple[int, int, int]] = {}
    things = []
    for dy in range(-(h // 2), h - h // 2):
        for dx in range(-(w // 2), w - w // 2):
            x, y = x0 + dx, y0 + dy
            if not (0 <= x < world.area[0] and 0 <= y < world.area[1]):
                continue
            material, obj = world[(x, y)]
            dist = abs(dx) + abs(dy)
            if material is not None and material != "grass" and (dx, dy) != (0, 0):
                if material not in nearest or dist < nearest[material][0]:
                    nearest[material] = (dist, dx, dy)
            if obj is not None and obj is not player:
                name = type(obj).__name__.lower()
                if name == "player":
                    name = f"player_{players.index(obj)}"
                elif name == "plant":
                    name = "ripe plant" if obj.ripe else "sapling plant"
                things.append((dist, dy, dx, f"{name} {_offset(dx, dy)}"))
    lines.append("Nearest in view: " + ("; ".join(
        f"{m} {_offset(dx, dy)}" for m, (_, dx, dy) in sorted(nearest.items(),
                                                            key=lambda kv: (kv[1], kv[0])))
        or "only grass") + ".")
    lines.append("Creatures and players in view: "
                 + ("; ".join(t[3] for t in sorted(things)) or "none") + ".")
    mates = []
    for i, other in enumerate(players):
        if other is player:
            continue
        if other.health <= 0:
            mates.append(f"player_{i} is dead")
            continue
        dx, dy = int(other.pos[0]) - x0, int(other.pos[1]) - y0
        mates.append(f"player_{i} {_offset(dx, dy)}, health {other.health}, last action "
                     f"{last_actions[i]}")
    if mates:
        lines.append("Teammates: " + "; ".join(mates) + ".")
    return "\n".join(lines)


def crafter_score(means: dict[str, float]) -> dict[str, float]:
    """Crafter's score (Hafner, 2021) from the mean episode figures: the geometric mean of the
    22 achievements' success rates in percent with a 1% offset, exp(mean(log(1 + s))) − 1;
    ``score`` over players (``success_*``), ``team_score`` over teams (``team_success_*``)."""
    out = {}
    for prefix, name in (("success_", "score"), ("team_success_", "team_score")):
        rates = [means[prefix + a] for a in ACHIEVEMENTS if prefix + a in means]
        if len(rates) == len(ACHIEVEMENTS):
            out[name] = float(np.exp(np.mean(np.log1p(100.0 * np.array(rates)))) - 1.0)
    return out
