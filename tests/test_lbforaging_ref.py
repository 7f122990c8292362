"""The lbforaging reference family: PettingZoo face, state layout, registry, lockstep parity."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test, parallel_seed_test

import marl.envs
from marl.envs.lbforaging_ref import LBForagingParallelEnv, catalogue, lbf_state_from_reference

Action = pytest.importorskip("lbforaging.foraging.environment").Action

IDS = ["Foraging-8x8-2p-3f-v3", "Foraging-2s-8x8-2p-3f-v3"]


def random_actions(rng: np.random.Generator, infos: dict) -> dict[str, int]:
    return {a: int(rng.choice(np.flatnonzero(info["action_mask"]))) for a, info in infos.items()}


def greedy_actions(rng: np.random.Generator, infos: dict) -> dict[str, int]:
    """LOAD whenever it is available, else a random available action (so food gets eaten)."""
    actions = random_actions(rng, infos)
    return {a: 5 if infos[a]["action_mask"][5] else act for a, act in actions.items()}


@pytest.mark.parametrize("gym_id", IDS)
def test_pettingzoo_api_and_seed_tests_pass(gym_id: str) -> None:
    env_id = f"lbforaging:{gym_id}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the API test reports problems as warnings
        parallel_api_test(marl.envs.parallel_env(env_id), num_cycles=200)
        parallel_seed_test(lambda: marl.envs.parallel_env(env_id))


def expected_state(foraging) -> np.ndarray:
    """The native LBF state layout, written out cell by cell."""
    food = []
    for r in range(foraging.rows):
        for c in range(foraging.cols):
            if foraging.field[r, c]:
                food += [r, c, foraging.field[r, c]]
    food += [-1, -1, 0] * (foraging.max_num_food - len(food) // 3)
    players = [v for p in foraging.players for v in (p.position[0], p.position[1], p.level)]
    return np.array(food + players, np.float32)


def expected_mask(foraging, player) -> np.ndarray:
    return np.array([foraging._is_valid_action(player, a) for a in Action], np.int8)


@pytest.mark.parametrize("gym_id", IDS)
def test_state_and_action_masks_follow_the_unwrapped_env(gym_id: str) -> None:
    env = LBForagingParallelEnv(gym_id)
    rng = np.random.default_rng(0)
    obs, infos = env.reset(seed=5)
    f = env.foraging
    assert env.max_episode_steps == 50
    assert env.state_space.shape == (3 * 3 + 3 * 2,)
    for _ in range(120):
        state = env.state()
        assert state.dtype == np.float32
        np.testing.assert_array_equal(state, expected_state(f))
        assert env.state_space.contains(state)
        for agent, player in zip(env.possible_agents, f.players, strict=True):
            assert infos[agent]["action_mask"].dtype == np.int8
            np.testing.assert_array_equal(infos[agent]["action_mask"], expected_mask(f, player))
            assert env.observation_space(agent).contains(obs[agent])
        if not env.agents:
            obs, infos = env.reset()
            continue
        obs, _, _, _, infos = env.step(random_actions(rng, infos))


def test_time_limit_truncates_and_eating_the_last_food_terminates() -> None:
    env = LBForagingParallelEnv("Foraging-8x8-2p-3f-v3", max_episode_steps=5)
    env.reset(seed=0)
    for t in range(5):
        _, _, term, trunc, _ = env.step({a: 0 for a in env.agents})
        assert env.agents == ([] if t == 4 else env.possible_agents)
    assert term == {"agent_0": False, "agent_1": False}
    assert trunc == {"agent_0": True, "agent_1": True}
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})

    env.reset(seed=0)
    f = env.foraging
    f.field[:] = 0
    f.field[3, 4] = 1
    f._food_spawned = 1
    f.players[0].position, f.players[1].position = (3, 3), (6, 6)
    f._gen_valid_moves()
    _, rewards, term, trunc, _ = env.step({"agent_0": 5, "agent_1": 0})
    assert rewards == {"agent_0": 1.0, "agent_1": 0.0}
    assert term == {"agent_0": True, "agent_1": True}
    assert trunc == {"agent_0": False, "agent_1": False}
    assert env.agents == []


def test_step_rejects_missing_and_out_of_range_actions() -> None:
    env = LBForagingParallelEnv("Foraging-8x8-2p-3f-v3")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="agent_1"):
        env.step({"agent_0": 0})
    with pytest.raises(ValueError, match="agent_0: action 6"):
        env.step({"agent_0": 6, "agent_1": 0})


def test_spaces_are_cached_and_render_draws_rgb() -> None:
    pytest.importorskip("marl.envs.lbf.render")
    env = LBForagingParallelEnv("Foraging-8x8-2p-3f-v3", render_mode="rgb_array")
    assert env.action_space("agent_0") is env.action_space("agent_0")
    assert env.observation_space("agent_1") is env.observation_space("agent_1")
    env.reset(seed=1)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    with pytest.raises(ValueError, match="render_mode"):
        LBForagingParallelEnv("Foraging-8x8-2p-3f-v3", render_mode="human")


def test_registry_ids_kwargs_and_catalogue() -> None:
    assert "Foraging-8x8-2p-3f-v3" in catalogue()
    assert "Foraging-2s-8x8-2p-3f-v3" in catalogue()
    assert "lbforaging:Foraging-8x8-2p-3f-v3" in marl.envs.all_ids()
    with pytest.raises(marl.envs.UnknownEnvId, match="lbforaging:Foraging-8x8-2p-3f-v3"):
        marl.envs.make("lbforaging:Foraging-8x8-2p-3f-v9")
    with pytest.raises(marl.envs.UnknownEnvId, match="CartPole-v1"):
        marl.envs.parallel_env("lbforaging:CartPole-v1")
    with pytest.raises(TypeError, match="'max_episode_step'.*'max_episode_steps'"):
        marl.envs.make("lbforaging:Foraging-8x8-2p-3f-v3", max_episode_step=10)
    with pytest.raises(TypeError, match="'players' is set by the id"):
        marl.envs.parallel_env("lbforaging:Foraging-8x8-2p-3f-v3", players=3)
    env = marl.envs.make("lbforaging:Foraging-8x8-2p-3f-v3", num_envs=2, max_episode_steps=10)
    assert env.spec.episode_limit == 10
    assert env.spec.agent_names == ("agent_0", "agent_1")
    assert (env.spec.obs_shape, env.spec.state_shape, env.spec.n_actions) == ((15,), (15,), 6)


def test_missing_lbforaging_gives_an_empty_catalogue_and_an_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "lbforaging", None)
    assert catalogue() == []
    with pytest.raises(ImportError, match=r"pip install lbforaging==2\.0\.0"):
        marl.envs.parallel_env("lbforaging:Foraging-8x8-2p-3f-v3")


@pytest.mark.parametrize(
    ("native_id", "gym_id"), [("lbf:8x8-2p-3f", IDS[0]), ("lbf:2s-8x8-2p-3f", IDS[1])]
)
def test_native_lbf_matches_lbforaging_in_lockstep(native_id: str, gym_id: str) -> None:
    k = 4
    refs = [LBForagingParallelEnv(gym_id) for _ in range(k)]
    native = marl.envs.make(native_id, num_envs=k)
    rng = np.random.default_rng(1)

    def check(obs, ref_obs: list[dict], ref_infos: list[dict]) -> None:
        for b, ref in enumerate(refs):
            want = np.stack([ref_obs[b][a] for a in ref.possible_agents])
            masks = np.stack([ref_infos[b][a]["action_mask"] for a in ref.possible_agents])
            assert torch.equal(obs.obs[b], torch.from_numpy(want))
            assert torch.equal(obs.state[b], torch.from_numpy(ref.state()))
            assert torch.equal(obs.avail[b], torch.from_numpy(masks.astype(bool)))

    first = [ref.reset(seed=seed) for seed, ref in enumerate(refs)]
    infos = [i for _, i in first]
    obs = native.set_state(lbf_state_from_reference([ref.foraging for ref in refs]))
    check(obs, [o for o, _ in first], infos)
    seen = torch.zeros(3)  # rewarded agents, terminated copies, truncated copies
    for _ in range(150):
        actions = [greedy_actions(rng, info) for info in infos]
        step = native.step(torch.tensor([list(a.values()) for a in actions]))
        results = [ref.step(a) for ref, a in zip(refs, actions, strict=True)]
        infos = [r[4] for r in results]
        check(step.final_obs, [r[0] for r in results], infos)
        for b, (_, rew, term, trunc, _) in enumerate(results):
            torch.testing.assert_close(step.reward[b], torch.tensor(list(rew.values())))
            assert bool(step.terminated[b]) == term["agent_0"]
            assert bool(step.truncated[b]) == trunc["agent_0"]
        seen += torch.stack([(step.reward > 0).sum(), step.terminated.sum(), step.truncated.sum()])
        if step.done.any():
            fresh = [
                (r[0], r[4]) if ref.agents else ref.reset()
                for ref, r in zip(refs, results, strict=True)
            ]
            infos = [i for _, i in fresh]
            obs = native.set_state(lbf_state_from_reference([ref.foraging for ref in refs]))
            check(obs, [o for o, _ in fresh], infos)
    assert (seen > 0).all(), "the run should eat food, and both terminate and truncate"


def test_lbf_state_from_reference_layout() -> None:
    refs = [LBForagingParallelEnv(IDS[0]) for _ in range(2)]
    for seed, ref in enumerate(refs):
        ref.reset(seed=seed)
    f = refs[1].foraging
    f.field[:] = 0
    f.field[5, 2], f.field[2, 6] = 2, 1
    s = lbf_state_from_reference([ref.foraging for ref in refs])
    assert all(t.dtype == torch.int64 for t in vars(s).values())
    assert s.food_pos[1].tolist() == [[2, 6], [5, 2], [-1, -1]]
    assert s.food_level[1].tolist() == [1, 2, 0]
    assert s.player_pos[1].tolist() == [list(p.position) for p in f.players]
    assert s.step.tolist() == [0, 0]
    assert s.food_spawned.tolist() == [int(ref.foraging._food_spawned) for ref in refs]
    with pytest.raises(ValueError, match="at least one"):
        lbf_state_from_reference([])
