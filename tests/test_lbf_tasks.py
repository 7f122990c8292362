"""LBF's task space (tokens, repair, canonical form, mutation), set_tasks on the batched env,
and the held-out layouts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from test_lbf_walls import _distances, team_actions

from marl.envs import make
from marl.envs.lbf import LBFEnv, LBFLayout, LBFTaskSpace, heldout_tasks
from marl.tasks import TaskSpace

pytestmark = pytest.mark.usefixtures("one_thread")

_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))
SPACE = LBFTaskSpace(13, 13, 2, 3, max_walls=40)
SMALL = LBFTaskSpace(5, 5, 2, 2, max_walls=12)  # crowded: the repairs all happen here


def assert_legal(x: LBFLayout, space: LBFTaskSpace) -> None:
    """The legality rule of marl.envs.lbf.tasks, checked with plain breadth-first search."""
    field = {(r, c) for r in range(space.rows) for c in range(space.cols)}
    walls = set(x.walls)
    assert list(x.walls) == sorted(walls) and walls <= field
    assert len(walls) <= space.max_walls
    assert len(x.players) == space.n_players and len(x.foods) == space.n_foods
    assert list(x.foods) == sorted(x.foods)
    players = [(r, c) for r, c, _ in x.players]
    foods = [(r, c) for r, c, _ in x.foods]
    assert len(set(players)) == len(players) and len(set(foods)) == len(foods)
    assert set(players) <= field - walls and set(foods) <= field - walls - set(players)
    assert all(1 <= v <= space.max_player_level for *_, v in x.players)
    area = _distances(players[0], field - walls - set(foods))
    assert set(players) <= set(area), "a player is cut off"
    top = sorted((v for *_, v in x.players), reverse=True)
    for r, c, v in x.foods:
        room = sum((r + dr, c + dc) in area for dr, dc in _STEPS)
        assert 1 <= v <= min(space.max_food_level, sum(top[:room])), f"food {(r, c, v)}"


def _difference(a: LBFLayout, b: LBFLayout) -> int:
    """Layout elements that differ: walls added or removed, players moved or relevelled, food
    items not in both (as a multiset)."""
    players = sum(p != q for p, q in zip(a.players, b.players, strict=True))
    foods = len(a.foods) - sum((Counter(a.foods) & Counter(b.foods)).values())
    return len(set(a.walls) ^ set(b.walls)) + players + foods


# --- the task space ----------------------------------------------------------------------------
def test_sizes_and_protocol():
    assert isinstance(SPACE, TaskSpace)
    assert (SPACE.length, SPACE.levels, SPACE.vocab) == (45, 4, 1 + 169 * 4)
    env = make("lbf:13x13-2p-3f")
    assert env.task_space.max_walls == 42 and env.task_space.length == 47
    assert make("lbf:13x13-2p-3f", max_walls=40).task_space.length == 45
    with pytest.raises(ValueError, match="too small"):
        LBFTaskSpace(3, 3, 2, 3, max_walls=0)
    with pytest.raises(ValueError, match="do not fit"):
        LBFTaskSpace(5, 5, 2, 2, max_walls=22)


def test_round_trip_of_sampled_and_held_out_layouts():
    g = torch.Generator().manual_seed(0)
    for space in (SPACE, SMALL):
        tokens = space.sample(300, g)
        assert tokens.shape == (300, space.length) and tokens.dtype == torch.long
        assert ((tokens >= 0) & (tokens < space.vocab)).all()
        layouts = space.decode(tokens)
        assert torch.equal(space.encode(layouts), tokens)  # sampled tokens are canonical
        assert space.decode(space.encode(layouts)) == layouts
        for x in layouts:
            assert_legal(x, space)
        walls = [len(x.walls) for x in layouts]
        assert min(walls) == 0 and max(walls) >= space.max_walls - 2  # 0..W walls
    held = list(heldout_tasks("lbf:13x13-2p-3f").values())
    assert SPACE.decode(SPACE.encode(held)) == held


@pytest.mark.parametrize("space", [SPACE, SMALL], ids=["13x13", "5x5-crowded"])
def test_any_tokens_decode_to_a_legal_layout(space):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(-50, space.vocab + 50, (2000, space.length), generator=g)
    tokens[:20] = torch.randint(-(2**62), 2**62, (20, space.length), generator=g)
    tokens[20:40] = tokens[20:40, :1]  # one token everywhere: duplicates of everything
    layouts = space.decode(tokens)
    for x in layouts:
        assert_legal(x, space)
    canonical = space.canonical(tokens)
    assert torch.equal(space.canonical(canonical), canonical)  # idempotent
    assert space.decode(canonical) == layouts
    assert ((canonical >= 0) & (canonical < space.vocab)).all()
    walls = canonical[:, : space.max_walls]
    assert (walls[:, 1:] == 0).ge(walls[:, :-1] == 0).all()  # zeros last
    assert (walls.where(walls > 0, space.vocab).diff(dim=1) >= 0).all()  # ascending
    with pytest.raises(ValueError, match="integer tensor"):
        space.decode(torch.zeros(2, space.length))
    with pytest.raises(ValueError, match="integer tensor"):
        space.decode(torch.zeros(2, space.length + 1, dtype=torch.long))


def test_the_repair_rule_on_examples():
    """5x5, 2 players, 2 food items, up to 12 walls, levels up to 4."""
    def wall(r, c):
        return 1 + r * 5 + c

    def thing(r, c, level):
        return 1 + (r * 5 + c) * 4 + level - 1

    def decode(walls, players, foods):
        return SMALL.decode(torch.tensor([walls + [0] * (12 - len(walls)) + players + foods]))[0]

    # Duplicate and wrapped walls; a player on a wall, another on the first one's cell; a food
    # on a player: each to the next legal cell in row-major order. Levels: 4 -> 2 (players),
    # food 4 -> 3 (both players fit around it: 2 + 1).
    x = decode([wall(1, 1), wall(1, 1), wall(0, 0) + 26, -1],
               [thing(1, 1, 4), thing(1, 2, 1)], [thing(1, 2, 4), thing(3, 3, 2) + 100])
    assert x == LBFLayout(walls=((0, 0), (1, 1), (4, 4)), players=((1, 2, 2), (1, 3, 1)),
                          foods=((1, 4, 3), (3, 3, 2)))
    # A food in a walled-off corner moves out of it; one with a single open side can hold
    # only the level-2 player: level 2.
    x = decode([wall(0, 1), wall(1, 0), wall(3, 3), wall(4, 2)],
               [thing(2, 2, 2), thing(2, 3, 1)], [thing(0, 0, 1), thing(4, 3, 4)])
    assert x.foods == ((0, 2, 1), (4, 3, 2))
    # Player 0 walled in: the walls around its area go, decoding starts again.
    x = decode([wall(0, 1), wall(1, 0), wall(4, 4)], [thing(0, 0, 1), thing(3, 3, 2)],
               [thing(2, 2, 1), thing(2, 4, 1)])
    assert x == LBFLayout(walls=((4, 4),), players=((0, 0, 1), (3, 3, 2)),
                          foods=((2, 2, 1), (2, 4, 1)))
    # Row 1 is a wall but for a door at (1, 4): food on row 0 or in the door would cut player
    # 0 off, so it goes on to the first cell after them, (2, 0).
    walls = [wall(1, c) for c in range(4)]
    x = decode(walls, [thing(0, 0, 1), thing(3, 3, 2)], [thing(0, 2, 1), thing(4, 4, 1)])
    assert x == LBFLayout(walls=((1, 0), (1, 1), (1, 2), (1, 3)),
                          players=((0, 0, 1), (3, 3, 2)), foods=((2, 0, 1), (4, 4, 1)))
    # A corner food that would leave no cell for the next one: the walls around go.
    x = decode([wall(0, 2), wall(1, 1), wall(2, 0)], [thing(0, 0, 1), thing(0, 1, 2)],
               [thing(1, 0, 1), thing(4, 4, 1)])
    assert x == LBFLayout(walls=((2, 0),), players=((0, 0, 1), (0, 1, 2)),
                          foods=((1, 0, 1), (4, 4, 1)))


@pytest.mark.parametrize("k", [1, 3])
def test_mutate_changes_at_most_k_layout_elements(k):
    """Positions of canonical tokens shift when a wall is added, so what is bounded is the
    number of layout elements (walls, players, food items) that differ."""
    g = torch.Generator().manual_seed(k)
    tokens = SPACE.sample(400, g)
    mutated = SPACE.mutate(tokens, k, g)
    assert torch.equal(SPACE.canonical(mutated), mutated)
    before, after = SPACE.decode(tokens), SPACE.decode(mutated)
    changes = [_difference(a, b) for a, b in zip(before, after, strict=True)]
    assert max(changes) <= k
    assert sum(c > 0 for c in changes) > 0.8 * len(changes)
    assert k == 1 or max(changes) == k
    for x in after:
        assert_legal(x, SPACE)
    assert torch.equal(SPACE.mutate(tokens, 0, g), tokens)


@pytest.mark.parametrize("space", [SPACE, SMALL], ids=["13x13", "5x5-crowded"])
def test_shuffle_reorders_walls_and_food_but_keeps_the_layouts(space):
    g = torch.Generator().manual_seed(5)
    tokens = space.sample(300, g)
    raw = torch.randint(-50, 3 * space.vocab, (100, space.length), generator=g)
    for t in (tokens, raw):
        shuffled = space.shuffle(t, g)
        assert shuffled.shape == t.shape and torch.equal(space.canonical(shuffled),
                                                        space.canonical(t))
    w, n = space.max_walls, space.n_players
    shuffled = space.shuffle(tokens, g)
    assert torch.equal(shuffled[:, w:w + n], tokens[:, w:w + n])  # players in agent order
    for part in (slice(0, w), slice(w + n, None)):  # walls and food: same tokens, new order
        assert torch.equal(shuffled[:, part].sort(1).values, tokens[:, part].sort(1).values)
        changed = (shuffled[:, part] != tokens[:, part]).any(1)
        assert changed.float().mean() > 0.3  # 2 food items keep their order half the time


# --- set_tasks ---------------------------------------------------------------------------------
def _plays(env: LBFEnv, copy: int, x: LBFLayout) -> bool:
    s = env.state
    walls = torch.zeros(env.rows, env.cols, dtype=torch.long)
    for r, c in x.walls:
        walls[r, c] = 1
    foods = [(r, c, v) for (r, c), v in zip(s.food_pos[copy].tolist(),
                                            s.food_level[copy].tolist(), strict=True) if v]
    players = [(r, c, v) for (r, c), v in zip(s.player_pos[copy].tolist(),
                                              s.player_level[copy].tolist(), strict=True)]
    return (torch.equal(s.walls[copy], walls) and players == list(x.players)
            and foods == list(x.foods) and int(s.step[copy]) == 0
            and int(s.food_spawned[copy]) == sum(v for *_, v in x.foods))


def test_set_tasks_plays_exactly_those_layouts_from_each_reset():
    env = LBFEnv(6, players=2, field_size=13, max_num_food=3, max_episode_steps=4,
                 max_walls=40, validate=False, seed=0)
    held = list(heldout_tasks().values())
    env.set_tasks(env.task_space.encode(held[1:4]), ids=torch.tensor([0, 2, 5]))
    env.reset(seed=1)
    tasks = {0: held[1], 2: held[2], 5: held[3]}
    seen = []
    none = torch.zeros(6, 2, dtype=torch.long)
    for episode in range(3):
        assert all(_plays(env, i, x) for i, x in tasks.items()), f"episode {episode}"
        assert not env.state.walls[[1, 3, 4]].any()  # random layouts: no walls
        seen.append(env.state.player_pos[[1, 3, 4]].clone())
        for _ in range(4):  # the time limit: every copy autoresets
            step = env.step(none)
        assert step.truncated.all()
        again = env._observe(env.state)
        for name in ("obs", "state", "avail"):
            assert torch.equal(getattr(again, name), getattr(step.obs, name))
    assert not torch.equal(seen[0], seen[1])  # the others are drawn afresh
    env.set_tasks(None, ids=[2])
    env.set_tasks(env.task_space.encode([held[0]]), ids=[3])
    assert _plays(env, 2, held[2])  # episodes under way play on
    for _ in range(4):
        env.step(none)
    assert _plays(env, 0, held[1]) and _plays(env, 3, held[0]) and _plays(env, 5, held[3])
    assert not env.state.walls[2].any()
    env.set_tasks(env.task_space.encode([held[4]] * 6))
    env.reset()
    assert all(_plays(env, i, held[4]) for i in range(6))
    env.set_tasks(None)
    env.reset()
    assert not env.state.walls.any()


def test_set_tasks_refuses_bad_input():
    env = LBFEnv(4, players=2, field_size=13, max_num_food=3)
    length = env.task_space.length
    with pytest.raises(ValueError, match=r"\[4, 47\]"):
        env.set_tasks(torch.zeros(3, length, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        env.set_tasks(torch.zeros(4, length))
    with pytest.raises(ValueError, match="distinct copy indices"):
        env.set_tasks(torch.zeros(2, length, dtype=torch.long), ids=[1, 4])
    with pytest.raises(ValueError, match="distinct copy indices"):
        env.set_tasks(torch.zeros(2, length, dtype=torch.long), ids=[1, 1])


# --- held-out layouts --------------------------------------------------------------------------
def test_held_out_layouts_are_legal_and_get_cleared():
    """Every held-out layout (and random ones) is legal, and a team that walks to each food in
    turn and loads together clears it."""
    held = heldout_tasks("lbf:13x13-2p-3f")
    assert len(held) >= 5 and {"two_rooms", "spiral", "narrow_gap"} <= set(held)
    for x in held.values():
        assert_legal(x, SPACE)
    assert max(x.foods[i][2] for x in held.values() for i in range(3)) == 3  # needs both
    layouts = list(held.values()) + SPACE.decode(SPACE.sample(25, torch.Generator()
                                                              .manual_seed(2)))
    env = LBFEnv(len(layouts), players=2, field_size=13, max_num_food=3, max_walls=40,
                 max_episode_steps=1000, validate=False, seed=0)
    env.autoreset = False
    env.set_tasks(env.task_space.encode(layouts))
    env.reset()
    rng = np.random.default_rng(0)
    cleared = torch.zeros(len(layouts), dtype=torch.bool)
    for _ in range(600):
        actions = [team_actions(env.state, i, rng, 0.1) for i in range(len(layouts))]
        cleared |= env.step(torch.tensor(actions)).terminated
        if cleared.all():
            break
    names = list(held) + [f"sampled {i}" for i in range(25)]
    assert cleared.all(), [n for n, c in zip(names, cleared.tolist(), strict=True) if not c]
    with pytest.raises(ValueError, match="no held-out LBF layouts for 8x8-2p-3f"):
        heldout_tasks("lbf:8x8-2p-3f")
