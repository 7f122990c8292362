"""Multi-agent Crafter: the engine's rules with several players, step-for-step equality with
``crafter.Env`` for one player, and the protocol through PettingZoo and the adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

crafter = pytest.importorskip("crafter")

from marl.envs import make, parallel_env  # noqa: E402
from marl.envs.crafter.env import MultiCrafter  # noqa: E402
from marl.envs.crafter.rules import ACTIONS  # noqa: E402
from marl.envs.testing import check_vec_env  # noqa: E402

A = {name: i for i, name in enumerate(ACTIONS)}


def flat_world(players: int = 2, **kwargs) -> MultiCrafter:
    """A reset env whose world is all grass with no objects but the players, who stand at
    (10, 10), (12, 10), ... facing down, in daylight."""
    env = MultiCrafter(players, area=24, seed=0, **kwargs)
    env.reset(seed=0)
    world = env.world
    for obj in world.objects:
        world.remove(obj)
    for x in range(world.area[0]):
        for y in range(world.area[1]):
            world[x, y] = "grass"
    for i, player in enumerate(env.players):
        player.removed = False
        player.pos = np.array((10 + 2 * i, 10))
        player.facing = (0, 1)
        world.add(player)
    return env


def act(env: MultiCrafter, **actions: str) -> tuple:
    return env.step({agent: A[actions.get(agent, "noop")] for agent in env.agents})


def test_one_tree_is_one_wood_and_the_race_is_fair():
    winners = set()
    for seed in range(8):
        env = flat_world()
        env._order = np.random.default_rng(seed)
        a, b = env.players
        a.pos, b.pos = np.array((9, 10)), np.array((11, 10))
        env.world._obj_map[:] = 0
        env.world._objects = [None]
        env.world._chunks.clear()
        env.world.add(a)
        env.world.add(b)
        a.facing, b.facing = (1, 0), (-1, 0)
        env.world[10, 10] = "tree"  # crafter 1.8: a tree gives one wood and becomes grass
        act(env, player_0="do", player_1="do")
        wood = (a.inventory["wood"], b.inventory["wood"])
        assert sorted(wood) == [0, 1]
        winners.add(wood.index(1))
    assert winners == {0, 1}  # the player order is drawn per step


def test_give_moves_exactly_one_unit_to_the_player_faced():
    env = flat_world()
    a, b = env.players
    a.facing = (1, 0)
    b.pos = a.pos + (1, 0)
    env.world._obj_map[:] = 0
    env.world._objects = [None]
    env.world._chunks.clear()
    env.world.add(a)
    env.world.add(b)
    a.inventory["wood"] = 3
    _, _, _, _, infos = act(env)
    assert infos["player_0"]["action_mask"][A["give_wood"]] == 1
    assert infos["player_0"]["action_mask"][A["give_stone"]] == 0  # none to give
    act(env, player_0="give_wood")
    assert (a.inventory["wood"], b.inventory["wood"]) == (2, 1)
    a.facing = (-1, 0)  # nobody there: nothing moves
    _, _, _, _, infos = act(env, player_0="give_wood")
    assert (a.inventory["wood"], b.inventory["wood"]) == (2, 1)
    assert infos["player_0"]["action_mask"][A["give_wood"]] == 0


def test_placing_a_table_needs_wood_and_uses_it():
    env = flat_world()
    a = env.players[0]
    _, _, _, _, infos = act(env)
    assert infos["player_0"]["action_mask"][A["place_table"]] == 0
    act(env, player_0="place_table")
    assert env.world[a.pos + (0, 1)][0] == "grass"
    a.inventory["wood"] = 3
    _, _, _, _, infos = act(env)
    assert infos["player_0"]["action_mask"][A["place_table"]] == 1
    assert infos["player_0"]["action_mask"][A["make_wood_pickaxe"]] == 0  # no table yet
    act(env, player_0="place_table")
    assert env.world[a.pos + (0, 1)][0] == "table" and a.inventory["wood"] == 1
    _, _, _, _, infos = act(env)
    assert infos["player_0"]["action_mask"][A["make_wood_pickaxe"]] == 1
    act(env, player_0="make_wood_pickaxe")
    assert a.inventory["wood_pickaxe"] == 1 and a.inventory["wood"] == 0


def test_a_zombie_walks_towards_the_nearer_player():
    env = flat_world()
    a, b = env.players  # (10, 10) and (12, 10)
    b.pos = np.array((20, 10))
    env.world._obj_map[:] = 0
    env.world._objects = [None]
    env.world._chunks.clear()
    env.world.add(a)
    env.world.add(b)
    zombie = env._zombie(np.array((15, 16)))
    env.world.add(zombie)
    assert tuple(zombie.player.pos) == (10, 10)  # distance 11 against 11: the lower index
    zombie.pos = np.array((16, 16))
    env.world._obj_map[:] = 0
    env.world._objects = [None]
    env.world._chunks.clear()
    for obj in (a, b, zombie):
        env.world.add(obj)
    assert tuple(zombie.player.pos) == (20, 10)  # 10 against 12
    start = zombie.distance(b)
    for _ in range(6):
        act(env)
    assert zombie.distance(b) < start


def test_lava_kills_and_the_dead_leave():
    env = flat_world()
    a = env.players[0]
    env.world[a.pos + (0, 1)] = "lava"
    obs, rewards, term, trunc, infos = act(env, player_0="move_down")
    assert a.health == 0 and term["player_0"] and infos["player_0"]["dead"]
    assert env.agents == ["player_1"] and a.removed
    assert rewards["player_0"] == pytest.approx(-0.9)
    obs, *_ = act(env)
    assert "player_0" not in obs


def test_sleeping_and_waking():
    env = flat_world()
    a = env.players[0]
    a.inventory["energy"] = 8
    act(env, player_0="sleep")
    assert a.sleeping
    for _ in range(40):
        act(env, player_0="move_left")  # the engine keeps a sleeper asleep until rested
        if not a.sleeping:
            break
    assert not a.sleeping and a.achievements["wake_up"] == 1
    assert "wake_up" in env._unlocked[0]


def test_team_reward_is_the_sum():
    env = flat_world(reward="team")
    env.players[0].inventory["sapling"] = 1
    _, rewards, *_ = act(env, player_0="place_plant")
    assert rewards["player_0"] == rewards["player_1"] == 1.0


@pytest.fixture
def ordered_chunks(monkeypatch):
    """crafter.Env picks a creature to despawn from a chunk's *set* of objects, whose order
    follows memory addresses, so two runs of one seed differ; both envs here see each chunk in
    the order its objects were added (what MultiCrafter itself does)."""
    def chunks(world):
        return {key: sorted(objs, key=lambda o: int(world._obj_map[tuple(o.pos)]))
                for key, objs in world._chunks.items()}

    monkeypatch.setattr(crafter.engine.World, "chunks", property(chunks))


@pytest.mark.slow
def test_one_player_is_crafter_step_for_step(ordered_chunks):
    ours = MultiCrafter(1, seed=7)
    theirs = crafter.Env(seed=7)
    rng = np.random.default_rng(0)
    obs, _ = ours.reset()
    ref = theirs.reset()
    steps = 0
    while steps < 5000:
        assert np.array_equal(obs["player_0"], ref), f"step {steps}"
        action = int(rng.integers(17))
        o, r, term, trunc, info = ours.step({"player_0": action})
        ref, ref_reward, done, ref_info = theirs.step(action)
        steps += 1
        assert r["player_0"] == pytest.approx(ref_reward), f"step {steps}"
        assert (term["player_0"] or trunc["player_0"]) == done
        assert info["player_0"]["inventory"] == ref_info["inventory"]
        unlocked = sorted(k for k, v in ref_info["achievements"].items() if v > 0)
        assert info["player_0"]["achievements"] == unlocked
        obs = o
        if done:
            assert np.array_equal(o["player_0"], ref)
            obs, _ = ours.reset()
            ref = theirs.reset()


@pytest.mark.parametrize("obs_type", [pytest.param("rgb", marks=pytest.mark.slow), "symbolic"])
def test_protocol_through_the_adapter(obs_type):
    env = make("crafter:2p", num_envs=2, obs_type=obs_type, area=24, length=40)
    spec = env.spec
    assert spec.n_agents == 2 and spec.n_actions == 23 and spec.episode_limit == 40
    check_vec_env(env, steps=60)
    obs = env.reset(seed=1)
    assert obs.obs.dtype == torch.float32 and obs.avail.dtype == torch.bool


@pytest.mark.parametrize("obs_type", ["rgb", "symbolic"])
def test_pettingzoo_api(obs_type):
    from pettingzoo.test import parallel_api_test

    parallel_api_test(parallel_env("crafter:3p", obs_type=obs_type, area=24, length=30),
                      num_cycles=60)


def test_render_shows_the_whole_world_without_touching_the_dynamics():
    a = parallel_env("crafter:2p", area=24, render_mode="rgb_array", seed=3)
    b = parallel_env("crafter:2p", area=24, seed=3)
    a.reset(seed=3)
    b.reset(seed=3)
    a._step = b._step = 180  # night
    frame = a.render()
    assert frame.shape == (24 * 8, 24 * 8, 3) and frame.dtype == np.uint8
    assert a.world.random.randint(1 << 30) == b.world.random.randint(1 << 30)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="obs_type"):
        parallel_env("crafter:2p", obs_type="pixels")
    with pytest.raises(TypeError, match="unknown argument 'lenght'"):
        parallel_env("crafter:2p", lenght=10)
    with pytest.raises(ValueError, match="crafter:1p"):
        make("crafter:9p")


# --- DAMCS's MAC rules -------------------------------------------------------------------
def test_mac_reward_and_a_diamond_ends_the_episode():
    env = flat_world(reward="mac", mobs=False, diamond_ends=True)
    a, b = env.players
    env.world[a.pos + (0, 1)] = "tree"
    _, rewards, *_ = act(env, player_0="do", player_1="move_left")
    # +1 for acting, 10 × 5 for the team's first collect_wood, 10 × 5 for the unit of wood
    assert rewards == {"player_0": 101.0, "player_1": 3.0}
    b.facing = (0, 1)  # the move turned it left
    env.world[b.pos + (0, 1)] = "tree"
    _, rewards, *_ = act(env, player_1="do")
    assert rewards["player_1"] == 51.0  # the team had collect_wood already: the wood only
    b.inventory["iron_pickaxe"] = 1
    env.world[b.pos + (0, 1)] = "diamond"
    _, rewards, term, trunc, infos = act(env, player_1="do")
    assert rewards["player_1"] == 1 + 10 * 10 + 10 * 100
    assert term == {"player_0": True, "player_1": True} and not any(trunc.values())
    assert env.agents == [] and not infos["player_0"]["dead"]


def test_mac_ids_make_a_peaceful_world():
    env = parallel_env("crafter:mac-3p", area=32)
    env.reset(seed=5)
    kinds = {type(obj).__name__ for obj in env.world.objects}
    assert "Zombie" not in kinds and "Skeleton" not in kinds and "Player" in kinds
    assert env.reward_mode == "mac" and env.diamond_ends
    assert parallel_env("crafter:mac-2p", reward="team").reward_mode == "team"


# --- text observations ----------------------------------------------------------------------
GOLDEN = Path(__file__).parent / "golden" / "crafter_text.txt"  # a hand-built world's text


def test_text_observation_is_stable_and_names_everything_in_view():
    env = flat_world(obs_type="text")
    a = env.players[0]
    a.inventory["wood"], a.inventory["stone_pickaxe"] = 2, 1
    env.world[a.pos + (0, 2)] = "water"
    env.world[a.pos + (-3, -1)] = "tree"
    env.world.add(env._objects.Cow(env.world, a.pos + (-1, 2)))
    env.world.add(env._zombie(a.pos + (4, -3)))
    env.world.add(env._objects.Cow(env.world, a.pos + (5, 0)))  # outside the 9 × 7 view
    text = env._observations([True, True])["player_0"]
    assert text + "\n" == GOLDEN.read_text()
    assert env._observations([True, True])["player_0"] == text  # same state, same text
    assert env.observation_space("player_0").contains(text)


def test_text_observations_pass_pettingzoo_and_refuse_the_batch():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(parallel_env("crafter:2p", obs_type="text", area=24, length=20),
                      num_cycles=30)
    with pytest.raises(ValueError, match="parallel_env"):
        make("crafter:2p", obs_type="text")


# --- Crafter's score in the trainers ---------------------------------------------------------
def test_crafter_score_is_the_geometric_mean_with_an_offset():
    from marl.envs.crafter.rules import ACHIEVEMENTS, crafter_score

    none = {f"success_{a}": 0.0 for a in ACHIEVEMENTS}
    assert crafter_score(none) == {"score": 0.0}
    one = {**none, "success_collect_wood": 1.0}
    assert crafter_score(one)["score"] == pytest.approx(101 ** (1 / 22) - 1)
    every = {f"{p}{a}": 1.0 for a in ACHIEVEMENTS for p in ("success_", "team_success_")}
    assert crafter_score(every) == pytest.approx({"score": 100.0, "team_score": 100.0})


def test_training_logs_success_rates_and_the_score(tmp_path):
    from marl.config import load_config
    from marl.sweep import scalar_curve
    from marl.train import train

    cfg = load_config("ippo", "crafter:2p", flags=dict(
        steps=240, num_envs=2, progress=False, runs_dir=str(tmp_path), name="c",
        test_interval=0, test_episodes=2, log_interval=60),
        overrides=("env_args.obs_type=symbolic", "env_args.area=24", "env_args.length=30",
                   "hidden_dim=16", "critic_hidden_dim=16", "use_rnn=false"))
    summary = train(cfg)
    assert summary["env_steps"] == 240
    for group in ("train", "test"):
        for tag in ("success_collect_wood", "team_success_collect_wood", "score",
                    "team_score"):
            curve = scalar_curve(tmp_path / "c", f"{group}/{tag}")
            assert curve and 0.0 <= curve[-1][1] <= 100.0, f"{group}/{tag}"


@pytest.mark.slow  # a short training run
def test_marl_render_writes_a_crafter_episode(tmp_path, capsys):
    import json

    from marl.cli import main

    assert main(["train", "--algo", "ippo", "--env", "crafter:2p", "--steps", "60",
                 "--num-envs", "2", "--runs-dir", str(tmp_path), "--name", "r",
                 "--no-progress", "env_args.obs_type=symbolic", "env_args.area=24",
                 "env_args.length=30", "hidden_dim=8", "critic_hidden_dim=8", "use_rnn=false",
                 "test_episodes=2", "tensorboard=false"]) == 0
    capsys.readouterr()
    gif = tmp_path / "episode.gif"
    assert main(["render", "--checkpoint", str(tmp_path / "r"), "--out", str(gif)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["frames"] == 30  # the first frame and 29 steps: never the next episode's


def test_the_tables_are_the_engines():
    from marl.envs.crafter.rules import ACHIEVEMENTS, CRAFTER_ACTIONS

    assert ACHIEVEMENTS == tuple(crafter.constants.achievements)
    assert CRAFTER_ACTIONS == tuple(crafter.constants.actions)


def test_the_batched_env_draws_any_copy_for_gifs(tmp_path):
    from marl.render import save_gif

    env = make("crafter:2p", num_envs=2, area=24, obs_type="symbolic")
    env.reset(seed=0)
    frames = [env.render(1)]
    for _ in range(3):
        env.step(torch.zeros((2, 2), dtype=torch.long))
        frames.append(env.render(1))
    assert frames[0].shape == (24 * 8, 24 * 8, 3) and frames[0].dtype == np.uint8
    with pytest.raises(IndexError):
        env.render(2)
    from PIL import Image

    with Image.open(save_gif(frames, tmp_path / "world.gif")) as gif:
        assert gif.size == (192, 192)


@pytest.mark.slow  # starts a worker process
def test_subprocess_workers_draw_their_copies():
    env = make("crafter:2p", num_envs=2, area=24, obs_type="symbolic", workers="subprocess",
               num_workers=2)
    try:
        env.reset(seed=0)
        here = make("crafter:2p", num_envs=2, area=24, obs_type="symbolic")
        here.reset(seed=0)
        assert np.array_equal(env.render(1), here.render(1))
    finally:
        env.close()
