"""Native LBF through the batched protocol: shapes, autoreset, validation, rewards, seeding."""

from __future__ import annotations

import pytest
import torch

from marl.envs import make
from marl.envs.lbf import LBFState
from marl.envs.testing import check_vec_env


@pytest.mark.parametrize(
    "env_id", ["lbf:8x8-2p-3f", "lbf:2s-10x10-3p-3f-coop", "lbf:grid-2s-8x8-2p-2f", "lbf:5x7-2p-1f"]
)
def test_protocol(env_id):
    check_vec_env(make(env_id, num_envs=16, seed=0), steps=120)


def test_shapes_follow_the_id():
    env = make("lbf:15x15-4p-5f", num_envs=3)
    assert env.spec.obs_shape == (3 * 5 + 3 * 4,)
    assert env.spec.state_shape == (27,)
    assert env.spec.n_actions == 6 and env.spec.episode_limit == 50
    grid = make("lbf:grid-2s-8x8-2p-3f")
    assert grid.spec.obs_shape == (3, 5, 5)


def _state(player_pos, player_level, food_pos, food_level, step=0):
    food_level = torch.tensor([food_level])
    return LBFState(
        player_pos=torch.tensor([player_pos]),
        player_level=torch.tensor([player_level]),
        food_pos=torch.tensor([food_pos]),
        food_level=food_level,
        food_spawned=food_level.sum(1),
        step=torch.tensor([step]),
    )


def test_cooperative_load_rewards_and_termination():
    env = make("lbf:5x5-2p-1f", validate=True)
    env.reset(seed=0)
    # Food level 3 at (2, 2); players of levels 1 and 2 on its west and east.
    obs = env.set_state(_state([[2, 1], [2, 3]], [1, 2], [[2, 2]], [3]))
    assert obs.avail[0, :, 5].all()  # LOAD available for both
    step = env.step(torch.tensor([[5, 0]]))  # one loads alone: too weak
    assert step.reward.sum() == 0 and not step.done.any()
    step = env.step(torch.tensor([[5, 5]]))
    torch.testing.assert_close(step.reward, torch.tensor([[1 / 3, 2 / 3]]))
    assert step.terminated.all() and not step.truncated.any()
    # The final observation shows the empty field; the new episode has food again.
    assert (step.final_obs.state[0, :3] == torch.tensor([-1.0, -1.0, 0.0])).all()
    assert (step.obs.state[0, 2] > 0).item()


def test_time_limit_is_truncation():
    env = make("lbf:5x5-2p-1f", max_episode_steps=3)
    env.reset(seed=1)
    for _ in range(3):
        step = env.step(torch.zeros(1, 2, dtype=torch.long))
    assert step.truncated.all() and not step.terminated.any()
    assert env.state.step.item() == 0  # reset in the same step


def test_two_claims_on_one_cell_nobody_moves():
    env = make("lbf:6x6-2p-1f")
    env.reset(seed=0)
    env.set_state(_state([[2, 1], [2, 3]], [1, 1], [[4, 4]], [1]))
    env.step(torch.tensor([[4, 3]]))  # both move to (2, 2)
    assert env.state.player_pos.tolist() == [[[2, 1], [2, 3]]]
    env.step(torch.tensor([[4, 0]]))  # into a cell whose occupant stays: fails too
    env.step(torch.tensor([[4, 0]]))
    assert env.state.player_pos.tolist() == [[[2, 2], [2, 3]]]


def test_validation_names_copy_agent_action():
    env = make("lbf:8x8-2p-3f", num_envs=4)
    obs = env.reset(seed=0)
    actions = obs.avail.float().argmax(-1)
    bad = (~obs.avail).nonzero()[0].tolist()
    actions[bad[0], bad[1]] = bad[2]
    with pytest.raises(ValueError, match=rf"copy {bad[0]}, agent {bad[1]} .*action {bad[2]}"):
        env.step(actions)
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        env.step(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="out of range"):
        env.step(torch.full((4, 2), 6))
    with pytest.raises(ValueError, match="torch.Tensor"):
        env.step([[0, 0]] * 4)
    # Switched off, an unavailable action acts as NONE, as in lbforaging.
    env.validate = False
    env.step(actions)


def test_seed_reproduces_and_differs():
    a, b = make("lbf:8x8-2p-3f", num_envs=8), make("lbf:8x8-2p-3f", num_envs=8)
    assert torch.equal(a.reset(seed=5).obs, b.reset(seed=5).obs)
    assert not torch.equal(a.reset(seed=6).obs, b.reset(seed=5).obs)


def test_team_return_is_at_most_one():
    env = make("lbf:6x6-2p-2f", num_envs=256, validate=False, seed=0)
    obs = env.reset(seed=0)
    total = torch.zeros(256)
    returns = []
    gen = torch.Generator().manual_seed(0)
    for _ in range(120):
        scores = torch.rand(obs.avail.shape, generator=gen) + 2.0 * obs.avail[..., 5:6]
        step = env.step(scores.masked_fill(~obs.avail, -1).argmax(-1))
        total += step.reward.sum(1)
        returns += total[step.done].tolist()
        total[step.done] = 0
        obs = step.obs
    assert max(returns) <= 1 + 1e-6 and max(returns) > 0.99  # some episode cleared the field


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="players"):
        make("lbf:3x3-10p-1f")
    with pytest.raises(ValueError, match="num_envs"):
        make("lbf:8x8-2p-3f", num_envs=0)
    with pytest.raises(ValueError, match="max_player_level"):
        make("lbf:8x8-2p-3f", min_player_level=3, max_player_level=2)


def test_render_rgb():
    env = make("lbf:8x8-2p-3f", num_envs=2)
    env.reset(seed=0)
    frame = env.render(1)
    assert frame.shape == (320, 320, 3) and frame.dtype.name == "uint8"
    assert len({tuple(px) for px in frame.reshape(-1, 3)[::7]}) > 3  # more than a blank grid


def test_autoreset_observation_matches_the_new_state():
    """Fresh episodes come from a pool spawned in bulk: each copy's observation must be the
    one of the state it was given."""
    env = make("lbf:6x6-2p-2f", num_envs=64, validate=False, seed=0)
    env.reset(seed=0)
    seen = 0
    for _ in range(200):
        step = env.step(torch.randint(0, 6, (64, 2), generator=torch.Generator().manual_seed(seen)))
        again = env._observe(env.state)
        for name in ("obs", "state", "avail"):
            assert torch.equal(getattr(again, name), getattr(step.obs, name))
        seen += int(step.done.sum())
    assert seen > 64  # the pool was refilled at least once
    assert env.state.step.max() < 50


@pytest.mark.parametrize(("env_id", "least"), [("lbf:8x8-2p-3f", 40), ("lbf:2s-8x8-3p-3f", 40),
                                               ("lbf:6x6-2p-2f-coop", 4)])
def test_a_steps_observation_equals_one_made_afresh_while_food_is_eaten(env_id, least):
    """The step hands its observation what it saw around the players (less the food eaten),
    and eats only in the copies where food was eaten: the observation and rewards must be
    those of the state, made from nothing."""
    env = make(env_id, num_envs=128, validate=False, seed=1)
    env.autoreset = False
    obs = env.reset(seed=1)
    gen = torch.Generator().manual_seed(1)
    meals = 0
    for _ in range(40):
        before = env.state.food_level.clone()
        scores = torch.rand(obs.avail.shape, generator=gen) + 2.0 * obs.avail[..., 5:6]
        step = env.step(scores.masked_fill(~obs.avail, -1).argmax(-1))
        fresh = LBFState(**{k: v.clone() for k, v in vars(env.state).items()})
        again = env._observe(fresh)
        for name in ("obs", "state", "avail"):
            assert torch.equal(getattr(again, name), getattr(step.obs, name)), name
        ate = (env.state.food_level > 0).sum(1) < (before > 0).sum(1)
        assert torch.equal(step.reward.sum(1) > 0, ate)  # rewards exactly where food went
        meals += int(ate.sum())
        obs = step.obs
    assert meals >= least
