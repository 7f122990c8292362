"""SMACv2-style generated scenarios: sizes, the team and start distributions, per-type ranges,
the protocol, and rewards scaled per battle."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from marl.envs import UnknownEnvId, make, parallel_env
from marl.envs.smac.generated import RACES, GeneratedScenario
from marl.envs.testing import check_parallel_env, check_vec_env

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


@pytest.mark.parametrize(("race", "obs", "state"), [("protoss", 92, 130), ("terran", 82, 120),
                                                     ("zerg", 82, 120)])
def test_5_vs_5_sizes_equal_smacv2s(race, obs, state):
    g = GeneratedScenario(race, 5, 5)
    assert (g.obs_size, g.state_size, g.n_actions, g.limit) == (obs, state, 11, 200)
    env = make(f"smacv2:{race}_5_vs_5", num_envs=3, seed=0)
    o = env.reset(seed=0)
    assert o.obs.shape == (3, 5, obs) and o.state.shape == (3, state)


def test_bad_ids_and_bad_scenarios_name_the_problem():
    with pytest.raises(UnknownEnvId, match="race"):
        make("smacv2:elves_5_vs_5")
    with pytest.raises(UnknownEnvId, match="n <= m"):
        make("smacv2:zerg_6_vs_5")
    with pytest.raises(ValueError, match="unknown race"):
        GeneratedScenario("elves", 5, 5)


@pytest.mark.parametrize("race", list(RACES))
def test_teams_follow_the_weights_mirror_the_allies_and_never_are_all_exceptions(race):
    names, weights, exceptions = RACES[race]
    g = GeneratedScenario(race, 5, 7)
    kind, _ = g.draw(20000, torch.Generator().manual_seed(0), CPU)
    allies, enemies = kind[:, :5], kind[:, 5:]
    assert torch.equal(enemies[:, :5], allies)  # the enemies mirror the allies one for one
    share = torch.bincount(allies.flatten(), minlength=3).double() / allies.numel()
    assert share.tolist() == pytest.approx(list(weights), abs=0.01)
    banned = torch.tensor([t in exceptions for t in names])
    assert not banned[allies].all(-1).any()
    assert not banned[enemies[:, 5:]].all(-1).any()  # the extra enemies are a team too
    if exceptions:  # two extra enemies are both exceptions with probability 1%: redrawn
        small = GeneratedScenario(race, 1, 1).draw(5000, torch.Generator().manual_seed(1), CPU)
        assert not banned[small[0][:, 0]].any()


def test_starts_are_reflected_or_surrounded_half_the_time():
    g = GeneratedScenario("protoss", 5, 7)
    _, pos = g.draw(4000, torch.Generator().manual_seed(0), CPU)
    allies, enemies = pos[:, :5], pos[:, 5:]
    centre = (allies - 16).abs().amax((-1, -2)) <= 0.5
    assert centre.float().mean().item() == pytest.approx(0.5, abs=0.03)
    # reflected: allies on the left, their mirror images on the right (each jittered ±0.5)
    refl_a, refl_e = allies[~centre], enemies[~centre]
    assert (refl_a[..., 0] <= 15.5).all()
    assert (refl_e[:, :5, 0] + refl_a[..., 0] - 32).abs().max() <= 1.0
    assert (refl_e[:, :5, 1] - refl_a[..., 1]).abs().max() <= 1.0
    assert (refl_e[:, 5:, 0] >= 15.5).all()
    # surrounded: enemies on the diagonals, at most 4 groups, never on the allies
    off = enemies[centre] - 16
    assert (off[..., 0].abs() - off[..., 1].abs()).abs().max() <= 1.0
    assert (off.abs().amin(-1) >= 2 - 0.5).all()
    quadrants = (off[..., 0] > 0).long() * 2 + (off[..., 1] > 0).long()
    assert max(len(set(q.tolist())) for q in quadrants) <= 4


def test_each_agent_sees_and_shoots_with_its_own_types_ranges():
    env = make("smacv2:zerg_2_vs_2", num_envs=1, seed=0, validate=False)
    env.reset(seed=0)
    s = env.state
    # ally 0 a zergling (sight 8, attack range 2), ally 1 a hydralisk (sight 9, range 5)
    kind = torch.tensor([[0, 2, 0, 2]])
    k = env.table.take(kind)
    pos = torch.tensor([[[4.0, 4.0], [4.0, 28.0], [12.5, 4.0], [8.5, 28.0]]])
    env.set_state(dataclasses.replace(s, kind=kind, pos=pos, health=k.max_health.clone(),
                                      shield=k.max_shield.clone()))
    o = env.last_obs
    m = env.scenario
    feats = o.obs[0, :, 4: 4 + 2 * m.enemy_feats].reshape(2, 2, m.enemy_feats)
    assert feats[0, 0, 0] == 0 and feats[0, 0, 1] == 0  # 8.5 away: beyond a zergling's 8
    assert feats[1, 1, 0] == 1  # 4.5 away: a hydralisk may attack it
    assert feats[1, 1, 1] == pytest.approx(4.5 / 9)  # distance over its own sight, 9
    own = o.obs[0, :, -(2 + 3):]  # own x, y, then the type one-hot (no shields for Zerg)
    assert torch.allclose(own[:, :2], pos[0, :2] / 32)
    assert own[:, 2:].tolist() == [[1, 0, 0], [0, 0, 1]]


@pytest.mark.parametrize("name", ["protoss_5_vs_5", *(pytest.param(n, marks=pytest.mark.slow)
                                                      for n in ("terran_5_vs_7", "zerg_10_vs_11"))])
def test_protocol_and_render(name):
    env = make(f"smacv2:{name}", num_envs=6, seed=0)
    check_vec_env(env)
    env.reset(seed=1)
    frames = [env.render(i) for i in range(2)]
    assert frames[0].shape == (512, 512, 3) and (frames[0] != frames[1]).any()


def test_pettingzoo_face():
    check_parallel_env(lambda: parallel_env("smacv2:terran_5_vs_5"))


def focus_fire_or_close_in(env, obs) -> torch.Tensor:
    """Every agent attacks the weakest enemy it can, else steps towards its closest enemy
    (positions read from the global state)."""
    m, n, e = env.scenario, env.n_agents, env.n_enemies
    allies = obs.state[:, : n * m.ally_state_feats].reshape(-1, n, m.ally_state_feats)
    enemies = obs.state[:, n * m.ally_state_feats:][:, : e * m.enemy_state_feats]
    enemies = enemies.reshape(-1, e, m.enemy_state_feats)
    health = enemies[..., 0]
    delta = enemies[:, None, :, 1:3] - allies[:, :, None, 2:4]  # [B, N, E, 2]
    closest = delta.norm(dim=-1).masked_fill(health[:, None, :] <= 0, 1e9).argmin(-1)
    d = delta.gather(2, closest[..., None, None].expand(-1, -1, 1, 2)).squeeze(2)
    move = torch.where(d[..., 0].abs() > d[..., 1].abs(), torch.where(d[..., 0] > 0, 4, 5),
                       torch.where(d[..., 1] > 0, 2, 3))
    move = torch.where(obs.avail.gather(-1, move[..., None]).squeeze(-1), move, 1)
    targets = obs.avail[..., 6:]
    weakest = health[:, None, :].expand_as(targets).masked_fill(~targets, 9.0).argmin(-1) + 6
    act = torch.where(targets.any(-1), weakest, move)
    return torch.where(obs.avail[..., 1], act, 0)  # the dead: no-op


@pytest.mark.slow
@pytest.mark.parametrize("race", ["protoss", "zerg"])
def test_a_won_battle_returns_20_whatever_units_were_drawn(race):
    """Each battle's reward is scaled by its own enemies' health and shields: killing them
    all returns 20 (a little more where shields or Zerg health regenerated and were damaged
    again: SMACv2 clips a step's reward at 0, so regeneration costs nothing), whichever types
    the episode drew."""
    copies = 256
    env = make(f"smacv2:{race}_5_vs_5", num_envs=copies, seed=0, validate=False)
    obs = env.reset(seed=0)
    ret, won, over = torch.zeros(copies), torch.zeros(copies, dtype=torch.bool), \
        torch.zeros(copies, dtype=torch.bool)
    for _ in range(env.spec.episode_limit):
        step = env.step(focus_fire_or_close_in(env, obs))
        ret += step.reward.sum(-1) * ~over
        won |= step.info["won"] & ~over
        over |= step.done
        obs = step.obs
    assert over.all() and won.sum() >= 50
    assert ret[won].min() >= 20 - 1e-3 and ret[won].max() <= 22
    assert ret[~won].max() < 20
