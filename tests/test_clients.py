"""The environments as other projects use them: the PettingZoo face (TorchRL, RLlib, SuperSuit,
PettingZoo's own checkers), the gymnasium ids driven the way EPyMARL's ``gymma`` wrapper and
episode runner drive them, and ``StarCraft2Env`` driven the way PyMARL's episode runner does;
plus LBF's one-copy fast path in lockstep with the batched LBF."""

from __future__ import annotations

import dataclasses
import json
import runpy
import warnings
from collections.abc import Iterable
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test
from pettingzoo.utils.conversions import parallel_to_aec

from marl.envs import env_version, families, make, parallel_env
from marl.envs.gymnasium_ids import gym_id
from marl.envs.lbf import LBFEnv, parse_id
from marl.envs.lbf.one import LBFOne
from marl.envs.smac import MAPS
from marl.envs.smac.starcraft2 import StarCraft2Env

pytestmark = pytest.mark.usefixtures("one_thread")

FACE_IDS = ["lbf:8x8-2p-3f", "smac:3m", "smacv2:protoss_5_vs_5"]


# --- the PettingZoo face ---------------------------------------------------------------------
@pytest.mark.parametrize("env_id", FACE_IDS)
def test_pettingzoo_checkers(env_id):
    """PettingZoo's parallel API, seed and render tests, and its AEC API test through
    ``parallel_to_aec`` (which checks every observation lies in its space's bounds)."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    parallel_api_test(parallel_env(env_id), num_cycles=300)
    parallel_seed_test(lambda: parallel_env(env_id), num_cycles=100)
    with pytest.warns(UserWarning, match="off-screen"):
        render_test(lambda render_mode=None: parallel_to_aec(
            parallel_env(env_id, render_mode=render_mode)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api_test(parallel_to_aec(parallel_env(env_id)), num_cycles=300)
    assert not [w for w in caught if "infinity" in str(w.message)], "unbounded spaces"


def test_render_modes_and_fps():
    """render_mode="human" is accepted (render_test creates it); the frame rate is declared."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    env = parallel_env("lbf:8x8-2p-3f", render_mode="human")
    assert env.metadata["render_modes"] == ["human", "rgb_array"]
    assert env.metadata["render_fps"] > 0
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="off-screen"):
        assert env.render() is None
    env.close()
    frame = parallel_env("smac:3m", render_mode="rgb_array")
    frame.reset(seed=0)
    assert frame.render().dtype == np.uint8
    with pytest.raises(ValueError, match="render_mode"):
        parallel_env("lbf:8x8-2p-3f", render_mode="ansi")


@pytest.mark.parametrize("env_id", ["smac:3m", "smac:MMM", "smacv2:terran_5_vs_5"])
def test_smac_outcome_reaches_infos(env_id):
    """won / dead_allies / dead_enemies are in every agent's info after reset and after every
    step (the same keys throughout, as TorchRL's info specs need), equal to the batched env's."""
    env = parallel_env(env_id)
    native = make(env_id, validate=False, seed=0)
    native.autoreset = False
    _, infos = env.reset(seed=3)
    native.reset(seed=3)
    keys = {"action_mask", "won", "dead_allies", "dead_enemies"}
    assert all(set(i) == keys for i in infos.values())
    assert infos[env.agents[0]]["won"] is False and infos[env.agents[0]]["dead_allies"] == 0
    rng = np.random.default_rng(0)
    while env.agents:
        actions = {a: int(rng.choice(np.flatnonzero(infos[a]["action_mask"])))
                   for a in env.agents}
        _, _, terms, truncs, infos = env.step(actions)
        step = native.step(torch.tensor([list(actions.values())]))
        for info in infos.values():
            assert set(info) == keys
            assert type(info["won"]) is bool and type(info["dead_allies"]) is int
            for key in ("won", "dead_allies", "dead_enemies"):
                assert info[key] == step.info[key][0].item()
    assert any(terms.values()) or any(truncs.values())


def test_a_won_battle_says_so():
    """The last step of a won battle reports won=True and every enemy dead (win rates)."""
    env = parallel_env("smac:3m")
    env.reset(seed=0)
    sim = env.env
    s = sim.state
    n = sim.n_agents
    # one enemy left, at 1 health, next to ally 0
    health = s.health.clone()
    health[0, n + 1:] = 0.0
    health[0, n] = 1.0
    pos = s.pos.clone()
    pos[0, n] = pos[0, 0] + torch.tensor([2.0, 0.0])
    seen = sim.set_state(dataclasses.replace(s, health=health, pos=pos))
    assert bool(seen.avail[0, 0, 6])  # marine_0 can attack it
    _, rewards, terms, _, infos = env.step({a: 6 if a == "marine_0" else 1 for a in env.agents})
    assert all(terms.values()) and env.agents == []
    assert all(i["won"] is True and i["dead_enemies"] == 3 for i in infos.values())
    assert sum(rewards.values()) > 0


def test_dead_units_stay_with_only_noop():
    """A SMAC unit that dies stays in ``agents`` until the battle ends, with only no-op
    available and a zero observation."""
    env = parallel_env("smac:3m")
    env.reset(seed=0)
    s = env.env.state
    health = s.health.clone()
    health[0, 1] = 0.0
    env.env.set_state(dataclasses.replace(s, health=health))
    obs, rewards, terms, _, infos = env.step({"marine_0": 1, "marine_1": 0, "marine_2": 1})
    assert env.agents == env.possible_agents and "marine_1" in rewards
    np.testing.assert_array_equal(infos["marine_1"]["action_mask"], [1] + [0] * 8)
    assert not obs["marine_1"].any() and not terms["marine_1"]
    assert infos["marine_1"]["dead_allies"] == 1
    env.step({"marine_0": 1, "marine_1": np.int64(0), "marine_2": 1})  # its no-op is accepted


@pytest.mark.parametrize("env_id", ["lbf:8x8-2p-3f", "lbf:2s-10x10-3p-3f-coop",
                                    "lbf:grid-2s-8x8-2p-2f", "lbf:6x9-4p-2f",
                                    "smac:3m", "smac:MMM", "smac:6h_vs_8z", "smac:bane_vs_bane",
                                    "smac:corridor", "smacv2:zerg_5_vs_6",
                                    "smacv2:protoss_5_vs_5"])
def test_bounds_are_finite_and_hold(env_id):
    """Finite bounds (SuperSuit's normalize_obs refuses infinite ones) that every observation
    and state of random episodes respects."""
    env = parallel_env(env_id)
    space, state_space = env.observation_space(env.possible_agents[0]), env.state_space
    for box in (space, state_space):
        assert np.isfinite(box.low).all() and np.isfinite(box.high).all()
        assert (box.low < box.high).all()
    rng = np.random.default_rng(1)
    for episode in range(2):
        obs, infos = env.reset(seed=episode)
        while True:
            assert all(space.contains(o) for o in obs.values()), "observation out of bounds"
            assert state_space.contains(env.state()), "state out of bounds"
            if not env.agents:
                break
            actions = {a: int(rng.choice(np.flatnonzero(infos[a]["action_mask"])))
                       for a in env.agents}
            obs, _, _, _, infos = env.step(actions)


def test_supersuit_normalize_obs():
    supersuit = pytest.importorskip("supersuit")
    env = supersuit.normalize_obs_v0(parallel_env("smac:3m"))
    obs, _ = env.reset(seed=0)
    assert all((o >= 0).all() and (o <= 1).all() for o in obs.values())


INTEGER_LIKE = [3, np.int64(3), np.int32(3), np.uint8(3), np.array(3), np.array(3, np.int16),
                torch.tensor(3), torch.tensor(3, dtype=torch.int32)]
NOT_INTEGERS = [3.0, np.float32(3.0), torch.tensor(3.0), True, np.bool_(True),
                torch.tensor(True), "3", np.array([3]), torch.tensor([3]), None, 6, -1]


@pytest.mark.parametrize("action", INTEGER_LIKE, ids=repr)
def test_integer_like_actions(action):
    """Any integer-like action steps exactly like the plain int (TorchRL passes 0-d arrays,
    PettingZoo's samplers numpy integers)."""
    a, b = parallel_env("lbf:8x8-2p-3f"), parallel_env("lbf:8x8-2p-3f")
    a.reset(seed=0)
    b.reset(seed=0)
    for _ in range(3):
        out_a = a.step({"agent_0": action, "agent_1": 1})
        out_b = b.step({"agent_0": 3, "agent_1": 1})
        for x, y in zip(out_a[0].values(), out_b[0].values(), strict=True):
            np.testing.assert_array_equal(x, y)
        assert out_a[1] == out_b[1]


@pytest.mark.parametrize("action", NOT_INTEGERS, ids=repr)
def test_non_integer_actions_are_refused_naming_the_agent(action):
    env = parallel_env("lbf:8x8-2p-3f")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="agent_1: action"):
        env.step({"agent_0": 0, "agent_1": action})
    with pytest.raises(ValueError, match=r"unknown or finished agent\(s\) \['agent_9'\]"):
        env.step({"agent_0": 0, "agent_1": 0, "agent_9": 0})
    with pytest.raises(ValueError, match=r"no action given for agent\(s\) \['agent_1'\]"):
        env.step({"agent_0": 0, "agent_9": 0})


# --- LBF's one-copy fast path ----------------------------------------------------------------
ONE_CONFIGS = [
    ("8x8-2p-3f", {}),
    ("5x5-2p-1f", {"max_episode_steps": 12}),
    ("2s-10x10-3p-3f-coop", {}),
    ("1s-6x9-4p-4f", {"penalty": 0.25}),
    ("3x4-2p-1f", {"normalize_reward": False}),
    ("5x5-9p-2f", {"max_player_level": 3}),
    ("8x8-1p-2f", {"observe_agent_levels": False}),
    ("6x6-3p-2f", {"observe_agent_levels": False}),
    ("2s-7x7-3p-2f", {"observe_agent_levels": False, "min_food_level": 2, "max_food_level": 3}),
    ("grid-2s-8x8-2p-2f", {}),
    ("grid-1s-5x7-3p-3f", {"observe_agent_levels": False, "penalty": 0.1}),
]


def _towards_food(state, rng) -> torch.Tensor:
    """Each player LOADs when next to the first food left, else steps towards it (70% of the
    time; otherwise a uniform action, available or not): teams form, food gets eaten."""
    food = [tuple(p) for p, v in zip(state.food_pos[0].tolist(), state.food_level[0].tolist(),
                                     strict=True) if v > 0]
    actions = []
    for r, c in state.player_pos[0].tolist():
        if not food or rng.random() < 0.3:
            actions.append(int(rng.integers(6)))
            continue
        fr, fc = food[0]
        if abs(fr - r) + abs(fc - c) == 1:
            actions.append(5)
        elif fr != r and (fc == c or rng.random() < 0.5):
            actions.append(1 if fr < r else 2)
        else:
            actions.append(3 if fc < c else 4)
    return torch.tensor([actions])


def _same_obs(a, b, where):
    for field in ("obs", "state", "avail"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{where}: {field} dtype/shape"
        assert torch.equal(x, y), f"{where}: {field} differs"


@pytest.mark.parametrize("name, extra", ONE_CONFIGS, ids=[c[0] for c in ONE_CONFIGS])
def test_one_copy_lbf_in_lockstep_with_batched_lbf(name, extra):
    """LBFOne (plain Python rules) and LBFEnv (tensor code) from the same seeds and states,
    with the same actions (mostly towards food and loading, some unavailable): identical
    observations,
    states, masks, rewards and flags, step after step, across episodes and autoresets."""
    layout = {**parse_id(name), **extra}
    rng = np.random.default_rng(len(name))
    for autoreset in (False, True):
        batched = LBFEnv(1, validate=False, seed=7, **layout)
        one = LBFOne(validate=False, seed=7, **layout)
        batched.autoreset = one.autoreset = autoreset
        _same_obs(batched.reset(), one.reset(), "reset")
        rewarded = 0
        for t in range(300):
            actions = _towards_food(batched.state, rng)
            x, y = batched.step(actions), one.step(actions)
            where = f"{name}, autoreset={autoreset}, step {t}"
            _same_obs(x.final_obs, y.final_obs, where)
            _same_obs(x.obs, y.obs, where)
            for field in ("reward", "terminated", "truncated"):
                u, v = getattr(x, field), getattr(y, field)
                assert u.dtype == v.dtype and torch.equal(u, v), f"{where}: {field}"
            for f in dataclasses.fields(batched.state):
                assert torch.equal(getattr(batched.state, f.name), getattr(one.state, f.name)), \
                    f"{where}: state.{f.name}"
            rewarded += bool(x.reward.any())
            if x.done.any() and not autoreset:
                _same_obs(batched.reset(), one.reset(), where + " (reset)")
        assert rewarded >= 5, "too few rewarded steps to test the loading rules"


def test_one_copy_lbf_states_in_and_out():
    """set_state and state_dict move LBFOne's Python state in and out as LBFState tensors."""
    layout = parse_id("2s-8x8-3p-3f")
    batched = LBFEnv(1, validate=False, seed=0, **layout)
    one = LBFOne(validate=False, seed=1, **layout)
    pool = LBFEnv(16, validate=False, seed=2, **layout)
    pool.reset()
    for _ in range(5):
        pool.step(torch.randint(0, 6, (16, 3)))
    for i in range(16):
        s = dataclasses.replace(pool.state, **{f.name: getattr(pool.state, f.name)[i:i + 1]
                                               for f in dataclasses.fields(pool.state)})
        _same_obs(batched.set_state(s), one.set_state(s), f"state {i}")
        a = torch.randint(0, 6, (1, 3))
        _same_obs(batched.step(a).obs, one.step(a).obs, f"state {i}, step")
    saved = one.state_dict()
    again = LBFOne(validate=False, **layout)
    again.load_state_dict(saved)
    for _ in range(40):
        a = torch.randint(0, 6, (1, 3))
        _same_obs(one.step(a).obs, again.step(a).obs, "after load_state_dict")
    with pytest.raises(ValueError, match="one copy"):
        LBFOne(2, **layout)


def test_make_steps_one_cpu_copy_in_python():
    """``make("lbf:…")`` gives LBFOne for one copy on the CPU (the same episodes as LBFEnv:
    the lockstep test above) and LBFEnv otherwise; ``compile()`` leaves LBFOne as it is."""
    one = make("lbf:5x5-2p-1f", seed=0)
    assert type(one) is LBFOne and one.compile() is one
    assert type(make("lbf:5x5-2p-1f", num_envs=2)) is LBFEnv
    batched = LBFEnv(1, seed=0, **parse_id("5x5-2p-1f"))
    _same_obs(one.reset(), batched.reset(), "reset")
    for t in range(60):
        a = one.last_obs.avail[0].float().multinomial(1, generator=torch.Generator().manual_seed(t))
        x, y = one.step(a.view(1, 2)), batched.step(a.view(1, 2))
        _same_obs(x.obs, y.obs, f"step {t}")
        assert torch.equal(x.reward, y.reward) and torch.equal(x.done, y.done)


def test_face_over_lbf_is_the_one_copy_path_and_keeps_seeds():
    env = parallel_env("lbf:5x5-2p-1f")
    assert isinstance(env.env, LBFOne)
    env.reset(seed=4)
    native = make("lbf:5x5-2p-1f")
    np.testing.assert_array_equal(env.state(), native.reset(seed=4).state[0].numpy())
    with pytest.raises(TypeError, match="set by the id"):
        parallel_env("lbf:5x5-2p-1f", players=3)
    with pytest.raises(TypeError, match="did you mean 'penalty'"):
        parallel_env("lbf:5x5-2p-1f", penalt=0.1)


# --- gymnasium ids, driven as EPyMARL's gymma wrapper and episode runner do -----------------
class GymmaDriver:
    """What EPyMARL's ``envs/gymma.py`` asks of a gymnasium env: ``gymnasium.make(key)``
    (``module:id``), a TimeLimit, per-agent flattening, ``n_agents``, the longest spaces,
    ``unwrapped.seed`` or else ``reset(seed=)``, list actions, per-agent reward lists, a state
    of concatenated observations sized from ``unwrapped.state_size`` if there is one, and all
    actions available."""

    def __init__(self, key: str, time_limit: int, seed: int, **kwargs):
        self.env = TimeLimit(gymnasium.make(key, **kwargs), max_episode_steps=time_limit)
        self.spaces = list(self.env.observation_space)
        self.n_agents = self.env.unwrapped.n_agents
        self.episode_limit = time_limit
        self.longest_action = max(self.env.action_space, key=lambda s: s.n)
        self.longest_obs = spaces.flatdim(max(self.spaces, key=lambda s: s.shape))
        try:
            self.env.unwrapped.seed(seed)
        except AttributeError:
            self.env.reset(seed=seed)

    def _flat(self, obs):
        flat = [spaces.flatten(s, o) for s, o in zip(self.spaces, obs, strict=True)]
        return [np.pad(o, (0, self.longest_obs - len(o))) for o in flat]

    def reset(self):
        obs, info = self.env.reset()
        self.obs = self._flat(obs)
        return self.obs, info

    def step(self, actions):
        obs, reward, done, truncated, info = self.env.step([int(a) for a in actions])
        self.obs = self._flat(obs)
        reward = float(sum(reward))  # common_reward, reward_scalarisation "sum"
        if isinstance(done, Iterable):
            done = all(done)
        return self.obs, reward, done, truncated, info

    def get_state(self):
        return np.concatenate(self.obs).astype(np.float32)

    def get_state_size(self):
        if hasattr(self.env.unwrapped, "state_size"):
            return self.env.unwrapped.state_size
        return self.n_agents * self.longest_obs

    def get_avail_actions(self):
        return [[1] * self.longest_action.n for _ in range(self.n_agents)]

    def get_env_info(self):
        return {"state_shape": self.get_state_size(), "obs_shape": self.longest_obs,
                "n_actions": self.longest_action.n, "n_agents": self.n_agents,
                "episode_limit": self.episode_limit}


def run_episode(env, rng):
    """EPyMARL's episode runner: record state, avail and obs; act; step; mark the transition
    terminal unless the info says the time limit ended it; after the last step record state,
    avail and obs again and add the last info into the stats."""
    info = env.get_env_info()
    env.reset()
    terminated, t, ret, records = False, 0, 0.0, []
    while not terminated:
        state, avail, obs = env.get_state(), env.get_avail_actions(), env.obs
        assert state.shape == (info["state_shape"],), "state buffer sized wrongly"
        assert np.asarray(avail).shape == (info["n_agents"], info["n_actions"])
        assert all(o.shape == (info["obs_shape"],) for o in obs)
        actions = [rng.integers(info["n_actions"]) for _ in range(info["n_agents"])]
        _, reward, terminated, truncated, env_info = env.step(actions)
        terminated = terminated or truncated
        ret += reward
        records.append(terminated != env_info.get("episode_limit", False))
        t += 1
        assert t <= info["episode_limit"]
    assert env.get_state().shape == (info["state_shape"],)
    stats = {k: 0 + v for k, v in env_info.items()}  # EPyMARL sums them: numbers only
    return t, ret, records, stats


@pytest.mark.parametrize("key, limit, extra", [
    ("marl.envs:marl/Foraging-8x8-2p-3f-v1", 50, {}),
    ("marl.envs:marl/Foraging-2s-10x10-3p-3f-coop-v1", 50, {}),
    ("marl.envs:marl/Foraging-v1", 50, {"field_size": 6, "players": 3, "max_num_food": 2,
                                        "sight": 2, "grid_observation": True}),
    ("marl.envs:marl/SMAC-3m-v3", 60, {}),
    ("marl.envs:marl/SMAC-v3", 120, {"map_name": "2s3z"}),
    ("marl.envs:marl/SMACv2-protoss_5_vs_5-v3", 200, {}),
])
def test_gymma_style_episodes(key, limit, extra):
    env = GymmaDriver(key, limit, seed=0, **extra)
    unwrapped = env.env.unwrapped
    assert isinstance(env.env.observation_space, spaces.Tuple)
    assert isinstance(env.env.action_space, spaces.Tuple)
    assert len(env.env.observation_space) == env.n_agents == len(unwrapped.agents)
    assert not hasattr(unwrapped, "state_size")  # gymma would size the state from it
    rng = np.random.default_rng(0)
    for _ in range(2):
        t, ret, records, stats = run_episode(env, rng)
        assert records[:-1] == [False] * (t - 1)
        if key.startswith("marl.envs:marl/SMAC"):
            assert set(stats) >= {"battle_won", "dead_allies", "dead_enemies"}
        masks = unwrapped.action_masks()
        assert masks.dtype == bool and masks.shape == (env.n_agents, env.longest_action.n)
        assert unwrapped.state().shape == unwrapped.face.state_space.shape


def test_gymma_time_limit_is_not_a_terminal():
    """LBF's own time limit ends the episode with ``episode_limit`` in the info, so EPyMARL's
    runner stores the last transition as non-terminal and bootstraps."""
    env = GymmaDriver("marl.envs:marl/Foraging-v1", 100, seed=0, field_size=15,
                      max_num_food=1)
    rng = np.random.default_rng(0)
    env.reset()
    while True:  # only NONE: nothing is eaten, the episode runs to LBF's 50 steps
        _, reward, done, truncated, info = env.step([0] * env.n_agents)
        if done or truncated:
            break
    assert truncated and not done and info == {"episode_limit": True}
    t, _, records, _ = run_episode(env, rng)
    assert t <= 50


def test_gymnasium_ids():
    ids = [k for k in gymnasium.registry if k.startswith("marl/")]
    assert all(":" not in k for k in ids)
    for gid, env_id in (("marl/Foraging-8x8-2p-3f", "lbf:8x8-2p-3f"),
                        ("marl/Foraging-v", "lbf:8x8-2p-3f"), ("marl/SMAC-3m", "smac:3m"),
                        ("marl/SMAC-v", "smac:3m"),
                        ("marl/SMACv2-zerg_10_vs_11", "smacv2:zerg_10_vs_11"),
                        ("marl/SMACv2-v", "smacv2:zerg_10_vs_11")):
        v = env_version(env_id).split("-v")[1]
        full = gid + (v if gid.endswith("-v") else f"-v{v}")
        assert full in gymnasium.registry, full
    assert gym_id("smac:MMM2") == f"marl/SMAC-MMM2-v{families()['smac'].version}"
    env = gymnasium.make("marl/Foraging-v1", field_size=(6, 9), players=3, sight=2,
                         force_coop=True)
    assert env.unwrapped.env_id == "lbf:2s-6x9-3p-3f-coop"
    assert gymnasium.make("marl/SMACv2-v3", race="zerg", n_units=3,
                          n_enemies=4).unwrapped.env_id == "smacv2:zerg_3_vs_4"
    with pytest.raises(ValueError, match="players must be an integer"):
        gymnasium.make("marl/Foraging-v1", players=2.0)
    with pytest.raises(TypeError, match="set by the id"):
        gymnasium.make("marl/Foraging-8x8-2p-3f-v1", players=3)
    with pytest.raises(ValueError, match="expected 2 actions"):
        e = gymnasium.make("marl/Foraging-8x8-2p-3f-v1")
        e.reset(seed=0)
        e.step([0])


# --- StarCraft2Env, driven as PyMARL's episode runner does -----------------------------------
# PyMARL's config/envs/sc2.yaml (EPyMARL's differs in state_last_action: False, and adds
# heuristic_ai, heuristic_rest and seed)
PYMARL_SC2 = dict(continuing_episode=False, difficulty="7", game_version=None, map_name="3m",
                  move_amount=2, obs_all_health=True, obs_instead_of_state=False,
                  obs_last_action=False, obs_own_health=True, obs_pathing_grid=False,
                  obs_terrain_height=False, obs_timestep_number=False, reward_death_value=10,
                  reward_defeat=0, reward_negative_scale=0.5, reward_only_positive=True,
                  reward_scale=True, reward_scale_rate=20, reward_sparse=False, reward_win=200,
                  replay_dir="", replay_prefix="", state_last_action=True,
                  state_timestep_number=False, step_mul=8, debug=False)
EPYMARL_SC2 = {**PYMARL_SC2, "state_last_action": False, "heuristic_ai": False,
               "heuristic_rest": False}


def focus_fire(avail: list[list[int]]) -> torch.Tensor:
    """Attack the first enemy in range, else step east (dead: no-op), as a tensor like
    PyMARL's controller returns."""
    actions = []
    for a in np.asarray(avail):
        targets = np.flatnonzero(a[6:])
        actions.append(0 if a[0] else 6 + targets[0] if len(targets) else 4 if a[4] else 1)
    return torch.tensor([actions])


def pymarl_episode(env, policy, test_mode=False):
    """PyMARL's EpisodeRunner.run: returns the episode's length, return, recorded terminal
    flags and last env_info."""
    info = env.get_env_info()
    env.reset()
    terminated, t, ret, flags = False, 0, 0.0, []
    while not terminated:
        state, avail, obs = env.get_state(), env.get_avail_actions(), env.get_obs()
        assert state.shape == (info["state_shape"],) and state.dtype == np.float32
        assert len(obs) == info["n_agents"] and obs[0].shape == (info["obs_shape"],)
        assert len(avail) == info["n_agents"] and len(avail[0]) == info["n_actions"]
        actions = policy(avail)
        reward, terminated, env_info = env.step(actions[0])
        ret += reward
        flags.append(terminated != env_info.get("episode_limit", False))
        t += 1
    assert t <= env.episode_limit + 1
    # after the last step: the final state, masks and observations (the dead: only no-op)
    assert env.get_state().shape == (info["state_shape"],)
    assert all(a[0] == 1 or sum(a) > 0 for a in env.get_avail_actions())
    assert len(env.get_obs()) == info["n_agents"]
    return t, ret, flags, env_info


@pytest.mark.slow  # twelve whole battles
@pytest.mark.parametrize("args", [PYMARL_SC2, EPYMARL_SC2], ids=["pymarl", "epymarl"])
def test_starcraft2env_whole_episodes_as_pymarl_runs_them(args):
    env = StarCraft2Env(**{**args, "seed": 1})
    info = env.get_env_info()
    m = MAPS["3m"]
    last_action = m.n_agents * m.n_actions if args["state_last_action"] else 0
    assert info == {"state_shape": m.state_size - m.n_agents * m.n_actions + last_action,
                    "obs_shape": m.obs_size, "n_actions": m.n_actions, "n_agents": 3,
                    "episode_limit": m.limit}
    stats: dict = {}
    for _ in range(6):
        t, ret, flags, env_info = pymarl_episode(env, focus_fire)
        assert flags == [False] * (t - 1) + [True]
        assert set(env_info) == {"battle_won", "dead_allies", "dead_enemies"}
        stats = {k: stats.get(k, 0) + env_info.get(k, 0) for k in set(stats) | set(env_info)}
    s = env.get_stats()
    assert s["battles_game"] == 6 and s["battles_won"] == stats["battle_won"] >= 1
    assert s["win_rate"] == pytest.approx(s["battles_won"] / 6)
    json.dumps(s)
    env.close()


def test_starcraft2env_seeds_options_and_errors():
    a, b = StarCraft2Env(map_name="2s3z", seed=5), StarCraft2Env(map_name="2s3z", seed=5)
    assert pymarl_episode(a, focus_fire)[:2] == pymarl_episode(b, focus_fire)[:2]
    assert a.seed() == 5 and StarCraft2Env().map_name == "8m"
    extra = StarCraft2Env(map_name="3m", obs_timestep_number=True, state_timestep_number=True,
                          obs_instead_of_state=False, seed=0)
    obs, state = extra.reset()
    assert obs[0].shape == (MAPS["3m"].obs_size + 1,) and state[-1] == 0.0
    extra.step(focus_fire(extra.get_avail_actions())[0])
    assert extra.get_state()[-1] == pytest.approx(1 / 60) and extra.get_obs()[1][-1] > 0
    joint = StarCraft2Env(map_name="3m", obs_instead_of_state=True, seed=0)
    joint.reset()
    assert joint.get_state().shape == (joint.get_env_info()["state_shape"],) == (3 * 30,)
    v2 = StarCraft2Env(map_name="protoss_5_vs_5", seed=0)
    assert v2.get_env_info()["state_shape"] == 130 and v2.get_obs_size() == 92
    with pytest.raises(ValueError, match="reward_sparse=True is not supported"):
        StarCraft2Env(reward_sparse=True)
    with pytest.raises(ValueError, match="difficulty='3' is not supported"):
        StarCraft2Env(difficulty="3")
    with pytest.raises(TypeError):
        StarCraft2Env(map_nam="3m")
    with pytest.raises(ValueError, match="unknown map_name"):
        StarCraft2Env(map_name="4m")
    env = StarCraft2Env(map_name="3m", seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step([1, 1, 1])
    env.reset()
    with pytest.raises(ValueError, match=r"agent 0 \(marine_0\): action 0 \(no-op\)"):
        env.step([0, 1, 1])
    with pytest.warns(UserWarning, match="replays"):
        env.save_replay()
    assert env.render().dtype == np.uint8


@pytest.mark.slow  # two battles to the time limit
def test_starcraft2env_time_limit():
    """A timeout ends the battle (terminated, as SMAC); continuing_episode adds
    episode_limit, which PyMARL's runner turns into a non-terminal last transition."""
    def flee(avail):  # stalkers walk west, out of the spine crawler's reach
        return torch.tensor([[5 if a[5] else 1 for a in avail]])

    for continuing in (False, True):
        env = StarCraft2Env(map_name="2s_vs_1sc", seed=0, continuing_episode=continuing)
        t, _, flags, env_info = pymarl_episode(env, flee)
        assert t == env.episode_limit and not env_info["battle_won"]
        assert flags[-1] is (not continuing) and env_info.get("episode_limit", False) is continuing
        assert env.get_stats()["timeouts"] == 1


# --- the benchmark script --------------------------------------------------------------------
def test_bench_face_runs(capsys):
    pytest.importorskip("lbforaging")
    bench = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "bench_face.py"))
    out = bench["run"](rounds=1, seconds=0.01)
    assert {"lbforaging_steps_per_s", "face_lbf_steps_per_s", "face_over_lbforaging",
            "face_smac_3m_steps_per_s"} <= set(out)
    assert "PettingZoo face" in capsys.readouterr().out
