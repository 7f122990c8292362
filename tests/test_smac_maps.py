"""SMAC maps: unit lists and the observation/state/action sizes of SMAC's reference table."""

from __future__ import annotations

import pytest

from marl.envs.smac.maps import MAPS
from marl.envs.smac.units import UNITS

# map: (allies, enemies, limit, n_actions, obs, state) — SMAC's sizes with default flags
REFERENCE = {
    "3m": (3, 3, 60, 9, 30, 48),
    "8m": (8, 8, 120, 14, 80, 168),
    "2s3z": (5, 5, 120, 11, 80, 120),
    "3s5z": (8, 8, 150, 14, 128, 216),
    "MMM": (10, 10, 150, 16, 160, 290),
    "5m_vs_6m": (5, 6, 70, 12, 55, 98),
    "8m_vs_9m": (8, 9, 120, 15, 85, 179),
    "10m_vs_11m": (10, 11, 150, 17, 105, 243),
    "27m_vs_30m": (27, 30, 180, 36, 285, 1170),
    "3s_vs_5z": (3, 5, 250, 11, 48, 68),
    "2s_vs_1sc": (2, 1, 300, 7, 17, 27),
    "corridor": (6, 24, 400, 30, 156, 282),
    "6h_vs_8z": (6, 8, 150, 14, 78, 140),
    "bane_vs_bane": (24, 24, 200, 30, 336, 984),
    "so_many_baneling": (7, 32, 100, 38, 202, 397),
    "2c_vs_64zg": (2, 64, 400, 70, 332, 342),
    "MMM2": (10, 12, 180, 18, 176, 322),
    "3s5z_vs_3s6z": (8, 9, 170, 15, 136, 230),
    "25m": (25, 25, 150, 31, 250, None),  # obs 250 confirmed by SMAC's maintainer
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_sizes_equal_smac_reference(name):
    allies, enemies, limit, n_actions, obs, state = REFERENCE[name]
    m = MAPS[name]
    assert (m.n_agents, m.n_enemies, m.limit, m.n_actions, m.obs_size) == (
        allies, enemies, limit, n_actions, obs)
    if state is not None:
        assert m.state_size == state


def test_every_map_uses_known_units_of_one_race_per_side():
    for m in MAPS.values():
        for side in (m.ally_units, m.enemy_units):
            assert len({u.race for u in side}) == 1, m.name
        used = {u.name for u in m.ally_units + m.enemy_units}
        assert used <= set(UNITS)
        if m.types:  # the one-hot covers every unit type on the map
            assert used <= set(m.types), m.name


def test_unit_statistics_are_consistent():
    for u in UNITS.values():
        assert u.health > 0 and u.shield >= 0 and u.armour >= 0 and u.radius > 0
        assert (u.shield > 0) == (u.race == "P"), u.name
        assert u.healer == (u.name == "medivac")
        if not u.healer and u.name != "spine_crawler":
            assert u.damage > 0 and u.cooldown > 0 and u.speed > 0
    # a Marine walks 3.15 per second: 1.125 per 8-loop step at 22.4 loops per second
    assert UNITS["marine"].step_distance == pytest.approx(1.125)
    assert UNITS["marine"].cooldown_loops == pytest.approx(13.664)
