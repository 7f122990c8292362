"""Extract the SMAC / SMACv2 maps' data (terrain, spawns, enemy orders, unit data) to JSON.

    python scripts/extract_smac_maps.py [--maps-dir DIR] [--out DIR]

reads every ``*.SC2Map`` in ``--maps-dir`` (default ``../shared/reference/smac_maps`` from the
repository root) and writes ``<map>.json`` per map to ``--out`` (default
``envs/smac/mapdata``). :func:`extract_map` returns one map's record; :func:`dumps` gives the
exact text written (sorted keys, one line per grid row, deterministic). Needs ``mpyq`` (imported
only when a map is read; the package does not need it).

What the map files hold (established on all 27 maps of the reference folder)
============================================================================

An ``.SC2Map`` is an MPQ archive. Integers are little endian.

``MapInfo`` (version 39, 264..302 bytes): ``"IpaM"``, u32 version, u32, u32, **u32 width,
u32 height (bytes 16..24)**, u32 small-preview type, u32 large-preview type (1: no path follows),
two empty C strings, two u32, C string fog type (``"Dark"``), C string tileset (``"BraxisAlpha"``,
``"Agria"``, ``"Char"``, ``"Redstone"``), then **u32 camera bounds left, bottom, right, top**,
u32 base height (30720 = 7.5 * 4096), the load screen... Every map is 32 x 32 with camera
bounds (0, 0, 32, 32). The file holds no other rectangle, so ``playable`` is the camera bounds:
``[0, 0, 32, 32]`` on every map, the whole map (cells outside it would be written unwalkable).
The narrower walkable areas of most maps come from the cell flags, not from the bounds.

``t3SyncCliffLevel`` (2080 bytes): ``"CLIF"``, u32 version 100, u32 width, u32 height (32, 32),
16 zero bytes, then ``width * height`` u16, row-major, **row 0 = y in [0, 1) (the bottom)**,
column = x. Values are cliff heights in 1/64 of a level: 0 (low ground), 64 (level 1),
128 (level 2); values between two multiples of 64 are ramp cells (only ``2c_vs_64zg``:
72, 88, 104 on its two ramps).

``t3CellFlags`` (1056 bytes): ``"LFCT"``, u32 version 102, 16 zero bytes, u32 width, u32
height (32, 32), then one byte per cell, same order. Values seen: 0..3. **Bit 0 (1): the cell is
unpathable** for ground units. Bit 1 (2) is set on every cell whatever its pathing, except the
strip x = 31, y = 0..7 of the band and open-field maps (listed below); it is not pathing.

``t3SyncHeightMap`` / ``t3HeightMap`` are per-vertex (33 x 33) height maps (not used here);
``t3Terrain.xml``'s ``cliffCellList`` describes the cliff meshes on the 16 x 16 cliff-cell grid.

Which layer is the walkability truth: ``t3CellFlags`` bit 0
-----------------------------------------------------------
``pathable[y][x] = "1"`` iff bit 0 of the cell's flags is clear (and the cell lies in the
playable area). Evidence:

* every cell next to a different cliff level (8-neighbourhood, ramps excepted) has bit 0 set on
  all maps, except 4 diagonal cliff-corner cells on ``2s_vs_1sc`` and on ``6h_vs_8z``, where the
  flags shift the corner by one cell (the editor follows the diagonal cliff mesh; a cell-based
  rule cannot): the flags contain the cliff faces (two cells wide, one each side);
* the flags also mark painted unpathable ground that cliff levels alone call open: the low
  ground around the raised arenas of the band maps, of ``corridor``, ``so_many_baneling``,
  ``bane_vs_bane``, ``2m_vs_1z`` and ``2c_vs_64zg`` (flat level-0 ground, bit 0 set);
* the ramps of ``2c_vs_64zg`` (intermediate cliff values) have bit 0 clear: ground units cross
  levels there only;
* rows must be read bottom-up: so read, every spawn point and attack point of every map lies on
  a pathable cell (``2c_vs_64zg``'s zerglings at (16, 9) on level 1, the colossi at (16, 16) on
  the level-2 platform, corridor's zealots, zerglings and target in its corridor); read top-down,
  points of ``2c_vs_64zg``, ``corridor`` and ``so_many_baneling`` fall on unpathable cells.

The cliff levels stay in the record (``cliff``) for terrain height and for ramps
(``cliff % 64 != 0``). The game's own pathing grid (``ResponseGameInfo``) could not be compared
here (no game binary); the flags are the editor's saved pathing.

What the maps look like (``pathable``)
--------------------------------------
* Bands: ``3m``, ``8m``, ``25m``, ``5m_vs_6m``, ``8m_vs_9m``, ``10m_vs_11m``, ``27m_vs_30m``,
  ``2s3z``, ``3s5z``, ``3s5z_vs_3s6z``, ``1c3s5z``, ``MMM``, ``MMM2`` and SMACv2's
  ``10gen_protoss``/``10gen_terran``/``10gen_zerg``: a 32 x 16 walkable band, y in [8, 24), on a
  raised level (cliff 64, y 7..24) over unpathable low ground.
* Open 32 x 32 fields: ``3s_vs_3z``, ``3s_vs_4z``, ``3s_vs_5z`` and ``32x32_flat`` (Agria, all
  level 1, every cell pathable).
* ``2s_vs_1sc`` and ``6h_vs_8z``: open low ground around a raised plateau (x 8..19 resp.
  8..21) ringed by cliffs; both sides spawn on the plateau, the open outer ground is walkable but
  unreachable from it.
* ``2m_vs_1z`` and ``bane_vs_bane``: an octagonal arena, x 6..25, y 6..25.
* ``corridor``: a room (x 2..11, y 2..11), a 2 x 2 choke at (12..13, 12..13) and a diagonal
  wedge up to (29, 29). The choke touches the room and the wedge only at cell corners, (11, 11)
  and (14, 14): the pathable cells are one region under 8-adjacency but three under
  4-adjacency. The script sends the zerglings through it to a point in the room, so the game
  lets units pass: the flags rasterise the diagonal cliffs to cells, and a narrow diagonal
  passage comes out as corner-touching cells. Treat diagonal steps between pathable cells as
  open (or read ``cliff``, where the level-1 ground is one 4-connected region).
  ``so_many_baneling``: a diagonal staircase corridor from (2, 2) to (29, 29), 6..12 cells wide,
  4-connected.
* ``2c_vs_64zg``: walkable level-1 ground (y 6..17) with a level-2 platform (x 7..24, y 13..20;
  walkable x 8..23, y 14..19) reached by two ramps (x 4..6 and 25..27, y 14..17); zerglings spawn
  below the platform, colossi on it. The colossi (``Mover`` ``Colossus``) walk over cliffs anyway.

Spawns, orders (``MapScript.galaxy`` + ``Objects``)
===================================================
Units are created by ``libNtve_gf_CreateUnitsWithDefaultFacing(count, "UnitId", 0, player,
PointFromId(id))``; the point ids resolve through ``Objects`` (``<ObjectPoint Id Position
Name>``). Player 1 = allies (agents), player 2 = enemies. Calls at one point add up (the two
single-colossus calls of ``2c_vs_64zg``). Orders are ``attack`` orders, from
``UnitGroupIssueOrder(UnitGroup(null, player, ...), Order...)`` or, in periodic triggers, a loop
of ``UnitIssueOrder`` over the player's units that have no order (``UnitOrderCount == 0``). Each
order lists the trigger events that run it (``map_init``; ``all_units_dead``: the respawn
trigger, when no unit of either player is alive; ``periodic <seconds> s``).
No map orders player 1. ``enemy_attack_point`` is the point of player 2's attack-move when
there is exactly one such point, else null (see ``orders`` and ``script_notes``).

Unit data (``Base.SC2Data/GameData/UnitData.xml``)
==================================================
No archive holds WeaponData, EffectData or any other game data: weapons are the base game's
(``WeaponArray`` only names them). The ``*_RL`` units are complete copies without a ``parent``
attribute (fields they omit take the engine's defaults, not the base unit's); ``ReviveType`` names
the unit they copy. The base ids spawned for player 2 are the base game's, overridden only by
``Marine`` ``Food = 0`` on the marine-only maps (3m ... 27m_vs_30m) and ``32x32_flat``. ``units``
records, per side and suite unit name, the game id, ``parent`` (null everywhere) and the gameplay
fields below as the XML states them (:data:`SCALAR_FIELDS`, :data:`INDEXED_FIELDS`,
:data:`LIST_FIELDS`). Ally units listed: those player 1 spawns plus every ``*_RL`` copy defined
(SMACv2 maps define all nine); enemy units: those player 2 spawns plus base ids the XML overrides.
Copies agree across maps (``Colossus_RL`` in ``2c_vs_64zg`` is spelt ``Colosus_RL`` elsewhere);
all are ``DefaultAcquireLevel`` ``Passive`` and ``Response`` ``Nothing``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MAPS = Path("..") / "shared" / "reference" / "smac_maps"  # from the repository root
DEFAULT_OUT = Path("envs") / "smac" / "mapdata"

UNIT_DATA = b"Base.SC2Data\\GameData\\UnitData.xml"

# game ids (``_RL`` stripped) -> the suite's unit names; ``Colosus`` is the maps' own spelling
SUITE_NAMES = {
    "Marine": "marine", "Marauder": "marauder", "Medivac": "medivac", "Stalker": "stalker",
    "Zealot": "zealot", "Colossus": "colossus", "Colosus": "colossus", "Hydralisk": "hydralisk",
    "Zergling": "zergling", "Baneling": "baneling", "SpineCrawler": "spine_crawler",
}
SIDES = {1: "ally", 2: "enemy"}

# the gameplay fields of a CUnit recorded in ``units`` (as the XML names them)
SCALAR_FIELDS = (
    "LifeStart", "LifeMax", "LifeArmor", "LifeRegenRate", "LifeRegenDelay",
    "ShieldsStart", "ShieldsMax", "ShieldArmor", "ShieldRegenRate", "ShieldRegenDelay",
    "EnergyStart", "EnergyMax", "EnergyRegenRate",
    "Speed", "SpeedMultiplierCreep", "Acceleration", "Sight", "Radius", "SeparationRadius",
    "InnerRadius", "Height", "Mover", "Race", "Food", "ReviveType", "DefaultAcquireLevel",
    "Response",
)
INDEXED_FIELDS = ("Attributes", "PlaneArray", "Collide")  # {index: value}
LIST_FIELDS = ("WeaponArray", "BehaviorArray", "AbilArray")  # [Link, ...]

CREATE = re.compile(r'libNtve_gf_CreateUnitsWithDefaultFacing\((\d+), "(\w+)", (\d+), (\d+), '
                    r'PointFromId\((\d+)\)\)')
FUNC = re.compile(r"^\w+ (\w+) \([^)]*\) \{\n(.*?)^\}", re.S | re.M)
GROUP = r"UnitGroup\(null, (\d+), RegionEntireMap\(\)"


def _number(text: str) -> int | float | str:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d*\.\d+(e-?\d+)?|-?\d+e-?\d+", text):
        return float(text)
    return text


def _point(text: str) -> list[int | float]:
    x, y = (_number(v) for v in text.split(",")[:2])
    assert not isinstance(x, str) and not isinstance(y, str)
    return [x, y]


def suite_name(game_id: str) -> str:
    base = game_id[:-3] if game_id.endswith("_RL") else game_id
    if base not in SUITE_NAMES:
        raise ValueError(f"unknown unit id {game_id!r}")
    return SUITE_NAMES[base]


# --- binary layers ---------------------------------------------------------------------------
def parse_mapinfo(data: bytes) -> dict[str, Any]:
    """Size, tileset and camera bounds of ``MapInfo`` (see the module docstring)."""
    if data[:4] != b"IpaM":
        raise ValueError("MapInfo: bad magic")
    version, _, _, width, height, small, large = struct.unpack_from("<7I", data, 4)
    if version != 39 or small != 1 or large != 1:
        raise ValueError(f"MapInfo: unexpected version {version} / preview types {small}, {large}")
    pos = 32
    strings = []
    for _ in range(2):  # two C strings, then two u32
        end = data.index(b"\0", pos)
        strings.append(data[pos:end])
        pos = end + 1
    pos += 8
    names = []
    for _ in range(2):  # fog type, tileset
        end = data.index(b"\0", pos)
        names.append(data[pos:end].decode("ascii"))
        pos = end + 1
    left, bottom, right, top = struct.unpack_from("<4I", data, pos)
    if not (0 <= left < right <= width and 0 <= bottom < top <= height):
        raise ValueError(f"MapInfo: camera bounds {left, bottom, right, top} off a "
                         f"{width} x {height} map")
    return {"size": [width, height], "tileset": names[1], "camera": [left, bottom, right, top]}


def parse_cliff(data: bytes) -> tuple[int, int, list[list[int]]]:
    """``t3SyncCliffLevel``: ``(width, height, rows)``, ``rows[y][x]`` (row 0 at the bottom)."""
    if data[:4] != b"CLIF":
        raise ValueError("t3SyncCliffLevel: bad magic")
    w, h = struct.unpack_from("<II", data, 8)
    if len(data) != 32 + 2 * w * h:
        raise ValueError("t3SyncCliffLevel: unexpected length")
    vals = struct.unpack_from(f"<{w * h}H", data, 32)
    return w, h, [list(vals[y * w:(y + 1) * w]) for y in range(h)]


def parse_cell_flags(data: bytes) -> tuple[int, int, list[list[int]]]:
    """``t3CellFlags``: ``(width, height, rows)``, one byte per cell, row 0 at the bottom."""
    if data[:4] != b"LFCT":
        raise ValueError("t3CellFlags: bad magic")
    w, h = struct.unpack_from("<II", data, 24)
    if len(data) != 32 + w * h:
        raise ValueError("t3CellFlags: unexpected length")
    body = data[32:]
    return w, h, [list(body[y * w:(y + 1) * w]) for y in range(h)]


# --- script --------------------------------------------------------------------------------
def parse_points(objects: bytes) -> dict[str, dict[str, Any]]:
    root = ET.fromstring(objects)
    out = {}
    for p in root.iter("ObjectPoint"):
        out[p.get("Id", "")] = {"point": _point(p.get("Position", "")), "name": p.get("Name")}
    return out


def _trigger_events(script: str, funcs: dict[str, str]) -> dict[str, list[str]]:
    """The events of each registered trigger's function: ``{"gt_X_Func": [event, ...]}``;
    ``all_units_dead``: a unit died and the trigger's condition (no live unit of either
    player) holds."""
    init = re.search(r"void InitTriggers \(\) \{(.*?)\}", script, re.S)
    registered = set(re.findall(r"(gt_\w+)_Init\(\);", init.group(1))) if init else set()
    events: dict[str, list[str]] = {}
    for trig in sorted(registered):
        func = re.search(rf'{trig} = TriggerCreate\("(\w+)"\);', script)
        if func is None:
            continue
        evs = []
        for kind, args in re.findall(rf"TriggerAddEvent(\w+)\({trig}(?:, ([^;]*))?\);", script):
            body = funcs.get(func.group(1), "")
            if kind == "TimePeriodic":
                evs.append(f"periodic {args.split(',')[0].strip()} s")
            elif kind == "UnitDied" and body.count("c_unitCountAlive) == 0") == 2:
                evs.append("all_units_dead")
            else:
                evs.append(re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower())
        events[func.group(1)] = evs
    return events


def _reach(funcs: dict[str, str], events: dict[str, list[str]]) -> dict[str, list[str]]:
    """The trigger events under which each function runs (through gf_ calls)."""
    runs: dict[str, list[str]] = {}
    frontier = [(name, ev) for name, evs in events.items() for ev in evs]
    while frontier:
        name, ev = frontier.pop()
        if ev in runs.setdefault(name, []):
            continue
        runs[name].append(ev)
        for callee in re.findall(r"\b(gf_\w+)\(\)", funcs.get(name, "")):
            frontier.append((callee, ev))
    return {k: sorted(v) for k, v in runs.items()}


def _target(text: str, points: dict[str, dict[str, Any]]) -> dict[str, Any]:
    m = re.match(r"OrderTargetingPoint\(AbilityCommand\(\"attack\", 0\), PointFromId\((\d+)\)\)",
                 text)
    if m:
        p = points[m.group(1)]
        return {"kind": "point", "point": p["point"], "name": p["name"]}
    m = re.match(r"OrderTargetingPoint\(AbilityCommand\(\"attack\", 0\), "
                 r"libNtve_gf_RandomPointBetweenPoints\(PointFromId\((\d+)\), "
                 r"PointFromId\((\d+)\)\)\)", text)
    if m:
        a, b = points[m.group(1)], points[m.group(2)]
        return {"kind": "random_point_between", "points": [a["point"], b["point"]],
                "names": [a["name"], b["name"]]}
    m = re.match(r"OrderTargetingUnitGroup\(AbilityCommand\(\"attack\", 0\), (\w+)\)", text)
    if m:
        return {"kind": "unit_group", "group": m.group(1)}
    m = re.match(r"OrderTargetingUnit\(AbilityCommand\(\"attack\", 0\), UnitGroupClosestToPoint\("
                 + GROUP + r".*UnitGetPosition\(lv_unit_i\)\)\)", text)
    if m:
        return {"kind": "closest_unit", "player": int(m.group(1)), "to": "the ordered unit"}
    raise ValueError(f"unknown order target: {text[:120]}")


def parse_orders(script: str, points: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    funcs = {m.group(1): m.group(2) for m in FUNC.finditer(script)}
    runs = _reach(funcs, _trigger_events(script, funcs))
    orders = []
    for name, body in funcs.items():
        for line in body.splitlines():
            line = line.strip()
            if "IssueOrder(" not in line:
                continue
            if line.startswith("UnitGroupIssueOrder("):
                m = re.match(r"UnitGroupIssueOrder\(" + GROUP + r".*?\), (Order\w+\(.*\)), "
                             r"c_orderQueue\w+\);$", line)
                if m is None:
                    raise ValueError(f"unknown order: {line[:120]}")
                player, idle, target = int(m.group(1)), False, m.group(2)
            else:
                m = re.match(r"UnitIssueOrder\((\w+), (Order\w+\(.*\)), c_orderQueue\w+\);$", line)
                group = re.search(r"lv_\w+ = " + GROUP, body)
                if m is None or group is None or "UnitGroupUnit(" not in body:
                    raise ValueError(f"unknown order: {line[:120]}")
                player, target = int(group.group(1)), m.group(2)
                idle = "UnitOrderCount(lv_unit_i) == 0" in body
            orders.append({"player": player, "ability": "attack", "target": _target(target, points),
                           "only_idle": idle, "function": name, "events": runs.get(name, [])})
    return orders


def parse_spawns(script: str, points: dict[str, dict[str, Any]]) -> dict[str, list[dict]]:
    calls = CREATE.findall(script)
    if len(calls) != script.count("CreateUnits") or "UnitCreate(" in script:
        raise ValueError("unit creation calls the extractor does not read")
    spawns: dict[str, list[dict]] = {"ally": [], "enemy": []}
    for count, game_id, _flags, player, point_id in calls:
        side = spawns[SIDES[int(player)]]
        p = points[point_id]
        entry = next((e for e in side if e["point"] == p["point"]), None)
        if entry is None:
            entry = {"point": p["point"], "name": p["name"], "units": {}, "game_ids": {}}
            side.append(entry)
        name = suite_name(game_id)
        if entry["game_ids"].setdefault(name, game_id) != game_id:
            raise ValueError(f"two game ids for {name} at one point")
        entry["units"][name] = entry["units"].get(name, 0) + int(count)
    return spawns


def script_notes(orders: list[dict[str, Any]], spawns: dict[str, list[dict]]) -> str:
    notes = []
    if not spawns["ally"] and not spawns["enemy"]:
        notes.append("the script creates no units (SMACv2's Python code spawns them)")
    for o in orders:
        t = o["target"]
        who = "idle units" if o["only_idle"] else "all units"
        if t["kind"] == "point":
            what = f"attack-move to {t['name']!r} {t['point']}"
        elif t["kind"] == "random_point_between":
            what = f"attack-move to a random point between {t['names'][0]!r} {t['points'][0]} " \
                   f"and {t['names'][1]!r} {t['points'][1]}"
        elif t["kind"] == "unit_group":
            what = f"attack the unit group {t['group']} (the allies the script created)"
        else:
            what = f"attack the player-{t['player']} unit closest to the ordered unit"
        notes.append(f"player {o['player']} ({who}): {what}, on {', '.join(o['events'])}")
    if not orders:
        notes.append("the script orders no unit")
    return "; ".join(notes)


# --- unit data -----------------------------------------------------------------------------
def parse_unit_data(xml: bytes) -> dict[str, dict[str, Any]]:
    out = {}
    for unit in ET.fromstring(xml).iter("CUnit"):
        rec: dict[str, Any] = {"game_id": unit.get("id"), "parent": unit.get("parent")}
        for child in unit:
            tag, val = child.tag, child.get("value")
            if tag in SCALAR_FIELDS and val is not None:
                rec[tag] = _number(val)
            elif tag in INDEXED_FIELDS and val is not None:
                rec.setdefault(tag, {})[child.get("index")] = _number(val)
            elif tag in LIST_FIELDS and child.get("Link"):
                rec.setdefault(tag, []).append(child.get("Link"))
        out[unit.get("id", "")] = rec
    return out


def unit_records(data: dict[str, dict[str, Any]], spawns: dict[str, list[dict]]
                 ) -> dict[str, dict[str, dict[str, Any]]]:
    used = {side: {gid for e in spawns[side] for gid in e["game_ids"].values()}
            for side in ("ally", "enemy")}
    used["ally"] |= {gid for gid in data if gid.endswith("_RL")}
    used["enemy"] |= {gid for gid in data if not gid.endswith("_RL")}
    out: dict[str, dict[str, dict[str, Any]]] = {"ally": {}, "enemy": {}}
    for side, ids in used.items():
        for gid in sorted(ids):
            name = suite_name(gid)
            if name in out[side]:
                raise ValueError(f"{side} {name}: two game ids")
            rec = dict(data.get(gid, {"game_id": gid, "parent": None}))
            rec["in_map_data"] = gid in data
            out[side][name] = rec
    return out


# --- the record ----------------------------------------------------------------------------
def extract_map(path: str | Path) -> dict[str, Any]:
    """One map's record (see the module docstring)."""
    import mpyq  # only here: the package does not need it

    path = Path(path)
    raw = path.read_bytes()
    archive = mpyq.MPQArchive(str(path))

    def member(name: bytes) -> bytes:
        data = archive.read_file(name)
        if data is None:
            raise ValueError(f"{path.name}: no {name.decode()}")
        return data

    info = parse_mapinfo(member(b"MapInfo"))
    width, height = info["size"]
    cw, ch, cliff = parse_cliff(member(b"t3SyncCliffLevel"))
    fw, fh, flags = parse_cell_flags(member(b"t3CellFlags"))
    if (cw, ch) != (width, height) or (fw, fh) != (width, height):
        raise ValueError(f"{path.name}: layer sizes differ from the map's")
    x0, y0, x1, y1 = info["camera"]
    pathable = ["".join("1" if (flags[y][x] & 1) == 0 and x0 <= x < x1 and y0 <= y < y1 else "0"
                        for x in range(width)) for y in range(height)]
    script = member(b"MapScript.galaxy").decode("utf-8").replace("\r\n", "\n")
    points = parse_points(member(b"Objects"))
    spawns = parse_spawns(script, points)
    orders = parse_orders(script, points)

    def attack_point(player: int) -> list[int | float] | None:
        pts = {tuple(o["target"]["point"]) for o in orders
               if o["player"] == player and o["target"]["kind"] == "point"}
        return list(pts.pop()) if len(pts) == 1 else None

    return {
        "map": path.stem,
        "source_md5": hashlib.md5(raw).hexdigest(),
        "size": [width, height],
        "tileset": info["tileset"],
        "playable": [x0, y0, x1, y1],
        "pathable": pathable,
        "cliff": cliff,
        "spawns": spawns,
        "enemy_attack_point": attack_point(2),
        "ally_attack_point": attack_point(1),
        "orders": orders,
        "script_notes": script_notes(orders, spawns),
        "units": unit_records(parse_unit_data(member(UNIT_DATA)), spawns),
    }


def dumps(record: dict[str, Any]) -> str:
    """The JSON text written for ``record``: sorted keys, indent 1, a list of numbers (a grid
    row) or of a few short strings on one line, longer lists of strings one string a line."""

    def enc(v: Any, depth: int) -> str:
        pad, inner = " " * depth, " " * (depth + 1)
        if isinstance(v, dict):
            if not v:
                return "{}"
            items = [f"{inner}{json.dumps(k)}: {enc(v[k], depth + 1)}" for k in sorted(v)]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(v, list):
            flat = [json.dumps(e) for e in v if not isinstance(e, (dict, list))]
            if len(flat) == len(v) and (not any(isinstance(e, str) for e in v)
                                        or sum(map(len, flat)) <= 80):
                return "[" + ", ".join(flat) + "]"
            return "[\n" + ",\n".join(inner + enc(e, depth + 1) for e in v) + "\n" + pad + "]"
        return json.dumps(v)

    return enc(record, 0) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--maps-dir", type=Path, default=REPO / DEFAULT_MAPS)
    ap.add_argument("--out", type=Path, default=REPO / DEFAULT_OUT)
    args = ap.parse_args(argv)
    paths = sorted(args.maps_dir.glob("*.SC2Map"))
    if not paths:
        print(f"no .SC2Map in {args.maps_dir}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        (args.out / f"{p.stem}.json").write_text(dumps(extract_map(p)))
        print(f"{p.stem}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
