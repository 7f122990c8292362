"""The SMAC maps' ground in the simulator: the map files' cells, spawns and routes."""

from __future__ import annotations

import pytest
import torch

from marl.envs import make
from marl.envs.smac import MAPS
from marl.envs.smac.mapdata import PLACEMENT_REACH, map_data
from marl.envs.smac.terrain import Terrain

pytestmark = pytest.mark.usefixtures("one_thread")
ROUTED = ("corridor", "2c_vs_64zg", "so_many_baneling", "6h_vs_8z", "bane_vs_bane", "2s_vs_1sc",
          "2m_vs_1z")


@pytest.mark.parametrize("name", list(MAPS))
def test_every_map_plays_on_its_file_ground_from_its_spawns(name):
    env = make(f"smac:{name}", num_envs=2, seed=0)
    env.reset(seed=0)
    data = map_data(name)
    assert torch.equal(env.walkable.cpu(), data.walkable)
    assert env.bounds.tolist() == list(data.size)
    x0, y0, x1, y1 = data.playable
    assert env.playable.tolist() == [x1 - x0, y1 - y0]
    s, k = env.state, env.columns(env.state)
    walker = k.walker.expand_as(s.health)
    assert env._open(s.pos)[walker].all()  # every ground unit starts on walkable ground
    assert torch.equal(s.pos[0], s.pos[1])  # the same starts every battle, as in the game
    n = env.n_agents
    for side, units, spawns in (("ally", range(n), data.ally_spawns),
                                ("enemy", range(n, env.n_units), data.enemy_spawns)):
        names = [env.scenario.kinds[int(i)].name for i in s.kind[0, list(units)]]
        for name_, i in zip(names, units, strict=True):
            points = torch.tensor([sp.point for sp in spawns if sp.units.get(name_, 0)])
            assert len(points), f"{side} {name_} has no spawn point"
            assert (points - s.pos[0, i]).norm(dim=-1).min() <= PLACEMENT_REACH
        counts: dict[str, int] = {}
        for sp in spawns:
            for u, c in sp.units.items():
                counts[u] = counts.get(u, 0) + c
        assert counts == {u: names.count(u) for u in set(names)}  # the map's units, all


@pytest.mark.parametrize("name", ROUTED)
def test_ground_units_never_stand_on_unwalkable_cells(name):
    env = make(f"smac:{name}", num_envs=8, seed=1, validate=False)
    obs = env.reset(seed=1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(40):
        noise = torch.rand(obs.avail.shape, generator=gen)
        obs = env.step(noise.masked_fill(~obs.avail, -1).argmax(-1)).obs
        s = env.state
        walker = env.columns(s).walker.expand_as(s.health) & (s.health > 0)
        assert env._open(s.pos)[walker].all()


def test_2c_vs_64zg_zerglings_reach_the_colossi_only_through_the_ramps():
    env = make("smac:2c_vs_64zg", num_envs=1, seed=0, validate=False)
    env.reset(seed=0)
    n = env.n_agents
    ramps = {(x, y) for x in (4, 5, 6, 25, 26, 27) for y in range(14, 18)}
    visited: list[set[tuple[int, int]]] = [set() for _ in range(env.n_enemies)]
    platform = {(x, y) for x, y in map(tuple, env.walkable.nonzero().tolist())
                if map_data("2c_vs_64zg").walkable[x, y] and 14 <= y <= 17} - ramps
    arrived = torch.zeros(env.n_enemies, dtype=torch.bool)
    for _ in range(60):
        env.step(torch.ones(1, n, dtype=torch.long))  # the colossi hold still
        s = env.state
        if bool((s.health[0, :n] <= 0).any()):
            break
        for j, (x, y) in enumerate(s.pos[0, n:].floor().long().tolist()):
            visited[j].add((x, y))
        gap = torch.cdist(s.pos[0, n:], s.pos[0, :n]).min(-1).values
        arrived |= gap < 1.5
    assert arrived.sum() >= 10  # many zerglings reached the colossi on their platform
    for j in arrived.nonzero().squeeze(1).tolist():
        assert visited[j] & ramps, f"zergling {j} reached the colossi without a ramp"
        assert visited[j] & platform


def test_routes_go_round_a_wall_and_through_a_pinch():
    walkable = torch.ones(8, 8, dtype=torch.bool)
    walkable[4, 0:7] = False  # a wall at x = 4 with a gap at the top (y = 7)
    terrain = Terrain(walkable, torch.device("cpu"))
    pos, goal = torch.tensor([1.5, 1.5]), torch.tensor([6.5, 1.5])
    path = [pos]
    for _ in range(200):
        way = terrain.waypoint(pos, goal)
        step = way - pos
        pos = pos + step / step.norm().clamp(min=1e-6) * min(0.2, float(step.norm()))
        assert terrain.open(pos)
        path.append(pos)
        if (pos - goal).norm() < 0.05:
            break
    assert (pos - goal).norm() < 0.05
    assert max(p[1] for p in path) >= 7  # through the gap at the top
    # two rooms that touch only at a corner: the corner lets units through
    pinch = torch.zeros(4, 4, dtype=torch.bool)
    pinch[:2, :2] = True
    pinch[2:, 2:] = True
    t = Terrain(pinch, torch.device("cpu"))
    assert t.open(torch.tensor([[2.0, 2.0], [1.9, 2.1], [2.1, 1.9]])).all()
    assert not t.open(torch.tensor([[1.5, 2.5], [2.5, 1.5]])).any()
    hop = t.waypoint(torch.tensor([1.2, 1.2]), torch.tensor([2.5, 3.8]))  # not in sight
    assert hop.tolist() == [2.0, 2.0]  # the corner first
