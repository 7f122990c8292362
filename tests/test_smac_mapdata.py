"""The SMAC maps' data extracted from their .SC2Map files (``envs/smac/mapdata/*.json``, written
by ``scripts/extract_smac_maps.py``): shapes, reproducibility, and the facts established."""

from __future__ import annotations

import importlib.util
import json
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAPDATA = REPO / "envs" / "smac" / "mapdata"
MAPS_DIR = REPO / ".." / "shared" / "reference" / "smac_maps"
SUITE_UNITS = {"marine", "marauder", "medivac", "stalker", "zealot", "colossus", "hydralisk",
               "zergling", "baneling", "spine_crawler"}
FILES = sorted(MAPDATA.glob("*.json"))


def load(name: str) -> dict:
    return json.loads((MAPDATA / f"{name}.json").read_text())


def extractor():
    spec = importlib.util.spec_from_file_location("extract_smac_maps",
                                                  REPO / "scripts" / "extract_smac_maps.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def components(cells: set[tuple[int, int]], diagonal: bool = False) -> list[set]:
    steps = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    if diagonal:
        steps += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    left, out = set(cells), []
    while left:
        start = left.pop()
        comp, queue = {start}, deque([start])
        while queue:
            x, y = queue.popleft()
            for dx, dy in steps:
                n = (x + dx, y + dy)
                if n in left:
                    left.remove(n)
                    comp.add(n)
                    queue.append(n)
        out.append(comp)
    return out


def walkable(d: dict) -> set[tuple[int, int]]:
    return {(x, y) for y, row in enumerate(d["pathable"]) for x, c in enumerate(row) if c == "1"}


def cell(point: list[float]) -> tuple[int, int]:
    return int(point[0]), int(point[1])


def test_all_maps_shipped():
    assert len(FILES) >= 27
    assert {"3m", "corridor", "2c_vs_64zg", "32x32_flat", "10gen_zerg"} <= {f.stem for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_shapes(path: Path):
    d = json.loads(path.read_text())
    assert d["map"] == path.stem and len(d["source_md5"]) == 32
    w, h = d["size"]
    x0, y0, x1, y1 = d["playable"]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert len(d["pathable"]) == h and all(len(r) == w and set(r) <= {"0", "1"}
                                           for r in d["pathable"])
    assert len(d["cliff"]) == h and all(len(r) == w for r in d["cliff"])
    assert all(x0 <= x < x1 and y0 <= y < y1 for x, y in walkable(d))
    for side in ("ally", "enemy"):
        for e in d["spawns"][side]:
            x, y = e["point"]
            assert x0 <= x < x1 and y0 <= y < y1
            assert d["pathable"][int(y)][int(x)] == "1", (side, e["point"])
            assert e["units"] and all(n > 0 for n in e["units"].values())
            assert set(e["units"]) == set(e["game_ids"]) and set(e["units"]) <= SUITE_UNITS
            for name in e["units"]:
                assert d["units"][side][name]["game_id"] == e["game_ids"][name]
        assert set(d["units"][side]) <= SUITE_UNITS
    for key in ("enemy_attack_point", "ally_attack_point"):
        if d[key] is not None:
            assert d["pathable"][int(d[key][1])][int(d[key][0])] == "1"
    assert isinstance(d["script_notes"], str) and d["script_notes"]


def test_reextraction_matches():
    pytest.importorskip("mpyq")
    if not MAPS_DIR.is_dir():
        pytest.skip("no ../shared/reference/smac_maps")
    mod = extractor()
    paths = sorted(MAPS_DIR.glob("*.SC2Map"))
    assert {p.stem for p in paths} == {f.stem for f in FILES}
    for p in paths:
        assert mod.dumps(mod.extract_map(p)) == (MAPDATA / f"{p.stem}.json").read_text(), p.stem


def test_bands_and_open_fields():
    band = {(x, y) for x in range(32) for y in range(8, 24)}
    for name in ("3m", "8m", "25m", "5m_vs_6m", "8m_vs_9m", "10m_vs_11m", "27m_vs_30m", "2s3z",
                 "3s5z", "3s5z_vs_3s6z", "1c3s5z", "MMM", "MMM2", "10gen_protoss",
                 "10gen_terran", "10gen_zerg"):
        assert walkable(load(name)) == band, name
    for name in ("3s_vs_3z", "3s_vs_4z", "3s_vs_5z", "32x32_flat"):
        assert len(walkable(load(name))) == 32 * 32, name
    for name in ("2s_vs_1sc", "6h_vs_8z"):  # a plateau in open (unreachable) low ground
        d = load(name)
        start = cell(d["spawns"]["ally"][0]["point"])
        plateau = next(c for c in components(walkable(d)) if start in c)
        assert all(cell(e["point"]) in plateau for s in ("ally", "enemy") for e in d["spawns"][s])
        assert len(plateau) < len(walkable(d)) / 2


def test_corridor_is_diagonal():
    d = load("corridor")
    cells = walkable(d)
    xs, ys = [c[0] for c in cells], [c[1] for c in cells]
    assert len(cells) < (max(xs) - min(xs) + 1) * (max(ys) - min(ys) + 1) / 2
    assert (3, 28) not in cells and (28, 3) not in cells and {(3, 3), (28, 28)} <= cells
    # one region under 8-adjacency; 4-adjacency splits it at the diagonal choke (12..13, 12..13)
    assert len(components(cells, diagonal=True)) == 1
    four = components(cells)
    assert sorted(map(len, four)) == [4, 100, 228]
    assert next(c for c in four if len(c) == 4) == {(12, 12), (13, 12), (12, 13), (13, 13)}
    zealots, = d["spawns"]["ally"]
    zerglings, = d["spawns"]["enemy"]
    assert zealots["units"] == {"zealot": 6} and zerglings["units"] == {"zergling": 24}
    room = next(c for c in four if len(c) == 100)
    assert cell(d["enemy_attack_point"]) in room  # the zerglings are sent through the choke
    assert cell(zerglings["point"]) not in room and cell(zealots["point"]) not in room


def test_2c_vs_64zg_platform_and_ramps():
    d = load("2c_vs_64zg")
    colossi, = d["spawns"]["ally"]
    zerglings, = d["spawns"]["enemy"]
    assert colossi["units"] == {"colossus": 2} and zerglings["units"] == {"zergling": 64}
    (cx, cy), (zx, zy) = cell(colossi["point"]), cell(zerglings["point"])
    cliff = d["cliff"]
    assert cliff[cy][cx] == 128 and cliff[zy][zx] == 64  # the colossi stand on a platform
    cells = walkable(d)
    ramps = {(x, y) for x, y in cells if cliff[y][x] % 64}
    assert ramps == {(x, y) for x in (4, 5, 6, 25, 26, 27) for y in range(14, 18)}
    # connected through the ramps, apart without them
    assert any({(cx, cy), (zx, zy)} <= c for c in components(cells))
    assert not any({(cx, cy), (zx, zy)} <= c for c in components(cells - ramps))
    # no pathable step joins two cells whose levels differ by a full cliff
    for x, y in cells:
        for n in ((x + 1, y), (x, y + 1)):
            if n in cells:
                assert abs(cliff[y][x] - cliff[n[1]][n[0]]) < 64
    assert d["units"]["ally"]["colossus"]["Mover"] == "Colossus"  # colossi walk cliffs anyway
    assert d["enemy_attack_point"] is None
    assert d["orders"][0]["target"] == {"kind": "unit_group", "group": "gv_allies"}


def test_orders():
    for name in ("3m", "MMM2", "3s_vs_5z", "27m_vs_30m"):
        d = load(name)
        assert d["enemy_attack_point"] == d["spawns"]["ally"][0]["point"] == [9, 16]
        assert d["ally_attack_point"] is None
    assert load("corridor")["enemy_attack_point"] == [4.47, 4.3298]
    assert load("2s_vs_1sc")["orders"] == []
    assert load("2m_vs_1z")["orders"][0]["target"]["kind"] == "random_point_between"
    flat = load("32x32_flat")
    assert flat["spawns"] == {"ally": [], "enemy": []}
    periodic, = flat["orders"]
    assert periodic["events"] == ["periodic 0.5 s"] and periodic["only_idle"]
    assert periodic["target"]["kind"] == "closest_unit" and periodic["target"]["player"] == 1
    gen = load("10gen_zerg")
    assert [o["events"] for o in gen["orders"]] == [["all_units_dead", "map_init"],
                                                     ["periodic 0.5 s"]]
    assert all(o["target"]["point"] == [8, 16] for o in gen["orders"])


def test_unit_data():
    marine = load("3m")["units"]
    assert marine["ally"]["marine"]["game_id"] == "Marine_RL"
    assert marine["ally"]["marine"]["LifeMax"] == 45 and marine["ally"]["marine"]["Speed"] == 2.25
    assert marine["enemy"]["marine"] == {"game_id": "Marine", "parent": None, "Food": 0,
                                         "in_map_data": True}
    stalker = load("3s5z")["units"]["ally"]["stalker"]
    assert (stalker["LifeMax"], stalker["ShieldsMax"], stalker["LifeArmor"]) == (80, 80, 1)
    assert stalker["WeaponArray"] == ["ParticleDisruptors"]
    assert load("1c3s5z")["units"]["ally"]["colossus"]["game_id"] == "Colosus_RL"
    assert load("6h_vs_8z")["units"]["enemy"]["zealot"]["in_map_data"] is False
    assert set(load("32x32_flat")["units"]["ally"]) == SUITE_UNITS - {"spine_crawler"}
