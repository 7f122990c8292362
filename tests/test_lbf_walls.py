"""Walls in native LBF: masks, moves, spawning, observations, rendering, checkpoints, and
LBFOne in lockstep with LBFEnv on walled fields and tasks."""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np
import pytest
import torch

from marl.envs.lbf import LBFEnv, LBFState, parse_id
from marl.envs.lbf.one import LBFOne

pytestmark = pytest.mark.usefixtures("one_thread")

_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # NORTH SOUTH WEST EAST: actions 1-4
# An 8x8 cross with a gap in each arm: the free cells stay connected.
CROSS = [(3, c) for c in range(8) if c not in (1, 6)] + [(r, 4) for r in range(8)
                                                         if r not in (0, 3, 6)]


# --- a team that walks around walls and loads together (also used by test_lbf_tasks) ---------
def _distances(start: tuple[int, int], open_cells: set[tuple[int, int]]) -> dict:
    dist, todo = {start: 0}, deque([start])
    while todo:
        r, c = todo.popleft()
        for dr, dc in _STEPS:
            nxt = (r + dr, c + dc)
            if nxt in open_cells and nxt not in dist:
                dist[nxt] = dist[(r, c)] + 1
                todo.append(nxt)
    return dist


def team_actions(state: LBFState, copy: int, rng: np.random.Generator, explore: float) -> list:
    """Actions of copy ``copy``: the fewest highest-level players whose levels reach the last
    food's (row-major: a player next to two food items loads the later one) walk (shortest
    paths around walls, food and, where they can, the other players) to distinct cells next
    to it and LOAD; the others, and everyone with probability ``explore``, act uniformly
    (available or not)."""
    rows, cols = state.walls.shape[1:]
    pos = [tuple(p) for p in state.player_pos[copy].tolist()]
    levels = state.player_level[copy].tolist()
    foods = [(r, c, v) for (r, c), v in zip(state.food_pos[copy].tolist(),
                                            state.food_level[copy].tolist(), strict=True) if v]
    walls = {tuple(w) for w in state.walls[copy].nonzero().tolist()}
    actions = [int(a) for a in rng.integers(0, 6, len(pos))]
    if not foods:
        return actions
    fr, fc, level = foods[-1]
    open_cells = {(r, c) for r in range(rows) for c in range(cols)} - walls
    open_cells -= {(r, c) for r, c, _ in foods}
    goals = [(fr + dr, fc + dc) for dr, dc in _STEPS if (fr + dr, fc + dc) in open_cells]
    team, total = [], 0
    for i in sorted(range(len(pos)), key=lambda i: -levels[i])[: len(goals)]:
        if total < level:
            team.append(i)
            total += levels[i]
    free_goals = list(goals)
    for i in team:
        reach = _distances(pos[i], open_cells)
        goal = min(free_goals, key=lambda g: reach.get(g, 10**6))
        free_goals.remove(goal)
        if rng.random() < explore:
            continue
        if pos[i] == goal:
            actions[i] = 5
            continue
        others = open_cells - {p for j, p in enumerate(pos) if j != i}
        back = _distances(goal, others)  # around the other players if it can
        if pos[i] not in back:
            back = _distances(goal, open_cells)
        here = back.get(pos[i], 10**6)
        for a, (dr, dc) in enumerate(_STEPS, 1):
            if back.get((pos[i][0] + dr, pos[i][1] + dc), 10**6) < here:
                actions[i] = a
                break
    return actions


# --- masks, moves, observations ----------------------------------------------------------------
def _state(player_pos, player_level, food_pos, food_level, walls=None):
    food_level = torch.tensor([food_level])
    extra = {} if walls is None else {"walls": torch.tensor([walls])}
    return LBFState(torch.tensor([player_pos]), torch.tensor([player_level]),
                    torch.tensor([food_pos]), food_level, food_level.sum(1),
                    torch.tensor([0]), **extra)


@pytest.mark.parametrize("kind", [LBFEnv, LBFOne])
def test_a_move_into_a_wall_is_unavailable_and_a_no_op(kind):
    env = kind(players=2, field_size=5, max_num_food=1, walls=[(2, 2), (1, 1)], seed=0)
    env.reset()
    # Player 0 at (2, 1): east (2, 2) and north (1, 1) are walls; player 1 at (0, 2).
    obs = env.set_state(_state([[2, 1], [0, 2]], [1, 1], [[4, 4]], [1]))
    assert obs.avail[0, 0].tolist() == [True, False, True, True, False, False]
    assert obs.avail[0, 1].tolist() == [True, False, True, True, True, False]
    with pytest.raises(ValueError, match=r"copy 0, agent 0 .*action 4"):
        env.step(torch.tensor([[4, 0]]))
    env.validate = False
    env.step(torch.tensor([[4, 2]]))  # east into the wall: NONE; player 1 south to (1, 2)
    env.step(torch.tensor([[1, 2]]))  # north into the wall: NONE; player 1 on into (2, 2): NONE
    assert env.state.player_pos.tolist() == [[[2, 1], [1, 2]]]
    assert env.state.walls[0].nonzero().tolist() == [[1, 1], [2, 2]]


@pytest.mark.parametrize("kind", [LBFEnv, LBFOne])
def test_grid_observation_shows_walls_as_not_free(kind):
    env = kind(players=2, field_size=5, max_num_food=1, sight=2, grid_observation=True,
               walls=[(2, 2), (0, 4)], seed=0)
    env.reset()
    obs = env.set_state(_state([[2, 1], [4, 4]], [1, 2], [[4, 0]], [1]))
    free = obs.obs[0, 0, 2]  # agent 0's window: rows 0-4, cols -1..3
    assert free[2, 3] == 0  # the wall (2, 2)
    assert free[2, 2] == 0 and free[4, 1] == 0  # itself, the food (4, 0)
    assert free[:, 0].eq(0).all()  # column -1 is off the field
    assert free[1, 1] == 1 and free[2, 4] == 1
    assert env.spec.obs_shape == (3, 5, 5)
    vector = kind(players=2, field_size=5, max_num_food=1, walls=[(2, 2)], seed=0)
    plain = kind(players=2, field_size=5, max_num_food=1, seed=0)
    s = _state([[2, 1], [4, 4]], [1, 2], [[4, 0]], [1])
    a, b = vector.set_state(s), plain.set_state(s)
    assert torch.equal(a.obs, b.obs) and torch.equal(a.state, b.state)  # walls are not shown


def test_a_state_without_walls_gets_the_fixed_walls():
    env = LBFEnv(players=2, field_size=5, max_num_food=1, walls=[(0, 0)])
    env.reset(seed=0)
    env.set_state(_state([[2, 1], [4, 4]], [1, 2], [[4, 0]], [1]))
    assert env.state.walls.tolist() == [[[1, 0, 0, 0, 0]] + [[0] * 5] * 4]


# --- spawning ----------------------------------------------------------------------------------
def test_spawning_keeps_off_walls_and_food_is_reachable():
    walls = torch.zeros(8, 8, dtype=torch.long)
    walls[tuple(zip(*CROSS, strict=True))] = 1
    free = {(r, c) for r in range(8) for c in range(8)} - set(CROSS)
    env = LBFEnv(2048, players=3, field_size=8, max_num_food=3, walls=CROSS, validate=False)
    player_cells = set()
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(60):  # and the autoreset pool
            env.step(torch.randint(0, 6, (2048, 3)))
        s = env.state
        assert (s.walls == walls).all()
        on = walls[s.player_pos[..., 0], s.player_pos[..., 1]]
        assert not on.any()
        alive = s.food_level > 0
        assert alive.any(1).all()
        fr, fc = s.food_pos[..., 0][alive], s.food_pos[..., 1][alive]
        assert not walls[fr, fc].any()
        assert ((fr >= 1) & (fr <= 6) & (fc >= 1) & (fc <= 6)).all()  # off the border
        player_cells |= {tuple(p) for p in s.player_pos.flatten(0, 1).tolist()}
        for b in range(0, 2048, 97):  # every food has a free neighbour the players reach
            foods = s.food_pos[b][s.food_level[b] > 0].tolist()
            for p in s.player_pos[b].tolist():
                reach = _distances(tuple(p), free)
                assert all(any((r + dr, c + dc) in reach for dr, dc in _STEPS)
                           for r, c in foods)
    assert player_cells == free  # players start on every free cell, never on a wall


def test_bad_walls_are_named():
    with pytest.raises(ValueError, match="off the 5x5 field"):
        LBFEnv(field_size=5, walls=[(5, 0)])
    with pytest.raises(ValueError, match="pairs of integers"):
        LBFEnv(field_size=5, walls=[(1, 2, 3)])
    with pytest.raises(ValueError, match="sequence of"):
        LBFEnv(field_size=5, walls="#")
    with pytest.raises(ValueError, match=r"2 regions \(of \[22, 1\] cells\)"):
        LBFEnv(field_size=5, walls=[(0, 1), (1, 0)])
    with pytest.raises(ValueError, match="need at least 3"):
        LBFEnv(field_size=4, walls=[(1, 1), (1, 2), (2, 1)])
    with pytest.raises(ValueError, match="max_walls"):
        LBFEnv(field_size=5, max_walls=-1)


def test_render_draws_walls():
    plain = LBFEnv(players=2, field_size=6, max_num_food=1)
    walled = LBFEnv(players=2, field_size=6, max_num_food=1, walls=[(0, 0)])
    s = _state([[2, 1], [4, 4]], [1, 2], [[3, 3]], [1])
    plain.set_state(s)
    walled.set_state(s)
    a, b = plain.render(), walled.render()
    assert not np.array_equal(a[5:35, 5:35], b[5:35, 5:35])  # the wall's cell
    assert np.array_equal(a[:, 40:], b[:, 40:])  # nothing else


# --- lockstep, checkpoints ---------------------------------------------------------------------
WALLED = [
    ("8x8-2p-3f", {"walls": CROSS}),
    ("grid-2s-8x8-2p-2f", {"walls": CROSS}),
    ("1s-8x8-4p-3f", {"walls": CROSS, "penalty": 0.25, "max_episode_steps": 30}),
    ("2s-13x13-2p-3f", {"tasks": True}),
    ("grid-3s-13x13-3p-3f-coop", {"tasks": True}),
]


def _same_obs(a, b, where):
    for name in ("obs", "state", "avail"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), f"{where}: {name} differs"


@pytest.mark.parametrize("name, extra", WALLED, ids=[c[0] for c in WALLED])
def test_one_copy_lbf_in_lockstep_with_batched_lbf_on_walls(name, extra):
    """LBFOne and LBFEnv with walls (fixed, or each episode's task, changed between
    episodes and sometimes dropped): identical observations, masks, rewards, flags and states,
    step after step, across autoresets."""
    extra = dict(extra)
    tasks = extra.pop("tasks", False)
    layout = {**parse_id(name), **extra}
    rng = np.random.default_rng(3)
    gen = torch.Generator().manual_seed(3)
    for autoreset in (False, True):
        batched = LBFEnv(1, validate=False, seed=5, **layout)
        one = LBFOne(validate=False, seed=5, **layout)
        batched.autoreset = one.autoreset = autoreset
        if tasks:
            first = batched.task_space.sample(1, gen)
            batched.set_tasks(first)
            one.set_tasks(first)
        _same_obs(batched.reset(), one.reset(), "reset")
        rewarded = 0
        for t in range(300):
            actions = torch.tensor([team_actions(batched.state, 0, rng, 0.3)])
            x, y = batched.step(actions), one.step(actions)
            where = f"{name}, autoreset={autoreset}, step {t}"
            _same_obs(x.final_obs, y.final_obs, where)
            _same_obs(x.obs, y.obs, where)
            for field in ("reward", "terminated", "truncated"):
                assert torch.equal(getattr(x, field), getattr(y, field)), f"{where}: {field}"
            for f in dataclasses.fields(batched.state):
                assert torch.equal(getattr(batched.state, f.name), getattr(one.state, f.name)), \
                    f"{where}: state.{f.name}"
            rewarded += bool(x.reward.any())
            if x.done.any():
                if tasks:
                    new = None if rng.random() < 0.2 else batched.task_space.sample(1, gen)
                    batched.set_tasks(new)
                    one.set_tasks(new)
                if not autoreset:
                    _same_obs(batched.reset(), one.reset(), where + " (reset)")
        assert rewarded >= 5, "too few rewarded steps to test the loading rules"


def test_checkpoint_keeps_walls_and_tasks():
    """state_dict / load_state_dict continue exactly, tasks included; a state_dict saved
    before walls existed (no ``walls``, no ``tasks``) loads with the fixed walls."""
    env = LBFEnv(8, players=2, field_size=13, max_num_food=3, max_episode_steps=10,
                 validate=False, seed=0)
    tokens = env.task_space.sample(5, torch.Generator().manual_seed(0))
    env.set_tasks(tokens, ids=[0, 1, 2, 3, 7])
    env.reset(seed=1)
    for _ in range(7):
        env.step(torch.randint(0, 6, (8, 2)))
    saved = env.state_dict()
    again = LBFEnv(8, players=2, field_size=13, max_num_food=3, max_episode_steps=10,
                   validate=False)
    again.load_state_dict(saved)
    for t in range(25):
        a = torch.randint(0, 6, (8, 2))
        x, y = env.step(a), again.step(a)
        _same_obs(x.obs, y.obs, f"step {t}")
        assert torch.equal(env.state.walls, again.state.walls)
    old = env.state_dict()
    del old["tasks"], old["state"]["walls"]
    old["pool"] = (({k: v for k, v in old["pool"][0].items() if k != "walls"}), old["pool"][1])
    fresh = LBFEnv(8, players=2, field_size=13, max_num_food=3, walls=[(0, 0)])
    fresh.load_state_dict(old)
    assert fresh.state.walls.shape == (8, 13, 13) and fresh.state.walls[:, 0, 0].all()
    fresh.step(torch.zeros(8, 2, dtype=torch.long))


def test_pettingzoo_face_with_walls():
    from pettingzoo.test import parallel_api_test

    from marl.envs import parallel_env

    env = parallel_env("lbf:8x8-2p-3f", walls=CROSS)
    assert isinstance(env.env, LBFOne)
    parallel_api_test(env, num_cycles=200)
