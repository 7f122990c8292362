"""The built-in SMAC simulator: protocol, sizes, hand-computed fights, rewards, the enemy AI."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from marl.envs import make, parallel_env
from marl.envs.smac import MAPS, SMACEnv
from marl.envs.testing import check_parallel_env, check_vec_env

pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.mark.parametrize("name", list(MAPS))
def test_sizes_match_the_map(name):
    env = make(f"smac:{name}", num_envs=2, seed=0)
    o = env.reset(seed=0)
    m = MAPS[name]
    assert o.obs.shape == (2, m.n_agents, m.obs_size)
    assert o.state.shape == (2, m.state_size)
    assert o.avail.shape == (2, m.n_agents, m.n_actions)


@pytest.mark.parametrize("name", ["3m", *(pytest.param(m, marks=pytest.mark.slow)
                                          for m in ("2s3z", "MMM2", "bane_vs_bane", "corridor"))])
def test_protocol(name):
    check_vec_env(make(f"smac:{name}", num_envs=6, seed=0))


def test_pettingzoo_face():
    check_parallel_env(lambda: parallel_env("smac:3m"))


def only_alive(name: str, units: list[int]) -> tuple[SMACEnv, object]:
    """One copy of ``name`` in which only the ``units`` (allies first) are alive; the state
    is returned for the caller to change and ``set_state``."""
    env = make(f"smac:{name}", num_envs=1, seed=0, validate=False)
    env.reset(seed=0)
    s = env.state
    keep = torch.zeros(env.n_units, dtype=torch.bool)
    keep[units] = True
    return env, dataclasses.replace(s, health=s.health * keep, shield=s.shield * keep,
                                    pos=s.pos.clone())


def duel(name: str, ally: int, enemy: int, gap: float = 4.0) -> tuple[SMACEnv, object]:
    """Only ally ``ally`` and enemy ``enemy`` alive, ``gap`` apart (centre to centre) in the
    middle of the map."""
    n = MAPS[name].n_agents
    env, s = only_alive(name, [ally, n + enemy])
    s.pos[0, ally] = torch.tensor([16.0 - gap / 2, 16.0])
    s.pos[0, n + enemy] = torch.tensor([16.0 + gap / 2, 16.0])
    env.set_state(s)
    return env, s


def attack(env: SMACEnv, ally: int, target: int) -> torch.Tensor:
    actions = torch.zeros(1, env.n_agents, dtype=torch.long)
    actions[0, ally] = 6 + target
    return actions


def test_marine_duel_takes_eight_shots_each():
    """Marines deal 6 a shot every 13.66 game loops (0.61 s at 22.4 loops/s) plus SC2's random
    delay of -1 to +2 loops, counted in whole loops: a shot every 13 to 16 loops, the first at
    loop 1; the eighth kills (45 health), between loops 92 and 113 (steps 12 to 15)."""
    env, _ = duel("3m", 0, 0)
    for k in range(1, 16):
        step = env.step(attack(env, 0, 0))
        if step.done.any():
            break
        loops = 8 * k
        for unit in (0, 3):
            taken = (45 - env.state.health[0, unit].item()) / 6
            assert taken == int(taken)  # whole shots of 6
            assert 1 + (loops - 1) // 16 <= taken <= 1 + (loops - 1) // 13
    assert step.terminated.all() and 12 <= k <= 15


def test_stalker_shields_absorb_first_and_marauder_bonus_beats_armour():
    env, _ = duel("2s3z", 0, 0)  # Stalker vs Stalker: 13 + 5 vs armoured
    env.step(attack(env, 0, 0))
    assert env.state.shield[0, 5] == pytest.approx(80 - 18)
    assert env.state.health[0, 5] == pytest.approx(80)
    env, _ = duel("MMM", 0, 0)  # Marauder vs Marauder: 10 + 10 vs armoured, minus 1 armour
    env.step(attack(env, 0, 0))
    assert env.state.health[0, 10] == pytest.approx(125 - 19)


def test_medivac_heals_an_injured_ally():
    n = MAPS["MMM"].n_agents
    # a Marine and the Medivac; every enemy is gone except one far away
    env, s = only_alive("MMM", [2, 9, n])
    s.health[0, 2] = 20.0
    s.pos[0, 2] = torch.tensor([8.0, 8.0])
    s.pos[0, 9] = torch.tensor([8.0, 10.0])
    s.pos[0, n] = torch.tensor([30.0, 30.0])
    env.set_state(s)
    actions = torch.ones(1, n, dtype=torch.long)  # stop
    actions[0, 9] = 6 + 2  # heal ally 2
    env.step(actions)
    assert env.state.health[0, 2] == pytest.approx(20 + 12.6 * 8 / 22.4)
    assert env.state.energy[0, 9] == pytest.approx(50 - 12.6 * 8 / 22.4 / 3 + 0.7875 * 8 / 22.4)


def focus_fire(env: SMACEnv, obs) -> torch.Tensor:
    """Every agent shoots the weakest enemy it can; with none in range it walks east."""
    m, n = env.scenario, env.n_agents
    start = n * m.ally_state_feats
    rows = obs.state[:, start: start + m.n_enemies * m.enemy_state_feats]
    health = rows.reshape(len(rows), m.n_enemies, -1)[..., 0]
    targets = obs.avail[..., 6:]
    weakest = health[:, None, :].expand_as(targets).masked_fill(~targets, 2.0).argmin(-1) + 6
    walk = torch.where(obs.avail[..., 4], 4, obs.avail.float().argmax(-1))
    return torch.where(targets.any(-1), weakest, walk)


def first_episodes(name: str, policy, copies: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    env = make(f"smac:{name}", num_envs=copies, seed=0, validate=False)
    obs = env.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    ret = torch.zeros(copies)
    won = torch.zeros(copies, dtype=torch.bool)
    over = torch.zeros(copies, dtype=torch.bool)
    for _ in range(env.spec.episode_limit):
        if policy == "random":
            actions = torch.rand(obs.avail.shape, generator=g).masked_fill(~obs.avail, -1)
            actions = actions.argmax(-1)
        else:
            actions = focus_fire(env, obs)
        step = env.step(actions)
        ret += step.reward.sum(-1) * ~over
        won |= step.info["won"] & ~over
        over |= step.done
        obs = step.obs
    assert over.all()
    return ret, won


def test_random_rarely_wins_3m_and_focus_fire_wins_far_more_with_perfect_return_20():
    _, random_won = first_episodes("3m", "random")
    ret, focus_won = first_episodes("3m", "focus")
    assert random_won.float().mean() <= 0.02
    assert focus_won.float().mean() >= 0.1 + random_won.float().mean()
    # a won 3m episode killed every enemy: the scaled return is SMAC's maximum, 20
    assert ret[focus_won].sub(20).abs().max() <= 0.5


def test_render_draws_the_battle():
    env = make("smac:2s3z", num_envs=2, seed=0)
    obs = env.reset(seed=0)
    first = env.render(1)
    assert first.shape == (512, 512, 3) and first.dtype.name == "uint8"
    for _ in range(5):
        obs = env.step(torch.where(obs.avail[..., 4], 4, 1)).obs  # walk east (else stop)
    assert (env.render(1) != first).any()
    face = parallel_env("smac:3m", render_mode="rgb_array")
    face.reset(seed=0)
    assert face.render().shape == (512, 512, 3)


def test_a_side_left_with_only_a_medivac_has_lost():
    n = MAPS["MMM"].n_agents
    env, s = only_alive("MMM", [2, n + 9])  # one allied Marine; the enemy Medivac
    env.set_state(s)
    step = env.step(torch.ones(1, n, dtype=torch.long) * env.last_obs.avail[0].long().argmax(-1))
    assert step.terminated.all() and step.info["won"].all()
    enemies = MAPS["MMM"].enemy_units
    max_reward = 10 * len(enemies) + 200 + sum(t.health + t.shield for t in enemies)
    assert step.reward.sum() == pytest.approx(200 / (max_reward / 20))


def test_overlapping_units_are_pushed_apart():
    n = MAPS["3m"].n_agents
    env, s = only_alive("3m", [0, 1, n])
    s.pos[0, 0] = torch.tensor([10.0, 10.0])
    s.pos[0, 1] = torch.tensor([10.2, 10.0])  # Marines of radius 0.375: 0.55 of overlap
    s.pos[0, n] = torch.tensor([30.0, 30.0])
    env.set_state(s)
    actions = torch.tensor([[1, 1, 0]])  # both stop; the third Marine is dead
    env.step(actions)
    pos = env.state.pos[0]
    assert (pos[0] - pos[1]).norm() == pytest.approx(0.75, abs=1e-3)
    assert pos[:2].mean(0).tolist() == pytest.approx([10.1, 10.0], abs=1e-4)  # both moved


def test_corridor_walls_block_movement_and_moves_into_them_are_unavailable():
    env, s = only_alive("corridor", [0, MAPS["corridor"].n_agents])
    s.pos[0, 0] = torch.tensor([11.5, 5.0])  # the east edge of the room (cells x 2-11)
    env.set_state(s)
    avail = env.last_obs.avail[0, 0]
    assert not avail[4] and avail[2] and avail[3] and avail[5]  # east blocked; N, S, W open
    assert env._open(torch.tensor([[11.9, 5.0]])).all()
    assert not env._open(torch.tensor([[12.1, 5.0]])).any()
    for _ in range(3):  # ordered east into the wall anyway (validation is off): it stays out
        env.step(torch.tensor([[4] + [0] * 5]))
        assert env.state.pos[0, 0, 0] < 12 and env._open(env.state.pos[0, :1]).all()
    y = env.state.pos[0, 0, 1].item()
    env.step(torch.tensor([[2] + [0] * 5]))  # north, along the wall, is free
    assert env.state.pos[0, 0, 1] > y + 1
    # the room meets the choke (cells 12-13) only at the corner (12, 12): a pinch units pass
    assert env._open(torch.tensor([[11.9, 11.9], [12.0, 12.0], [12.1, 12.1]])).all()
    assert not env._open(torch.tensor([[11.5, 12.5], [12.5, 11.5]])).any()


def test_inference_mode_step_gives_ordinary_tensors_and_the_same_battle():
    """SMAC steps under inference mode (``inference_step``); what it hands out must behave as
    ordinary tensors (changed in place, fed to autograd) and the battle be the one the plain
    step plays."""
    fast, plain = (make("smac:3m", num_envs=16, seed=4) for _ in range(2))
    plain.inference_step = False
    obs = {"fast": fast.reset(seed=4), "plain": plain.reset(seed=4)}
    gen = torch.Generator().manual_seed(0)
    finished = 0
    for _ in range(80):
        noise = torch.rand(obs["fast"].avail.shape, generator=gen)
        steps = {k: e.step(noise.masked_fill(~obs[k].avail, -1).argmax(-1))
                 for k, e in (("fast", fast), ("plain", plain))}
        for name in ("obs", "state", "avail"):
            assert torch.equal(getattr(steps["fast"].obs, name), getattr(steps["plain"].obs, name))
        assert torch.equal(steps["fast"].reward, steps["plain"].reward)
        finished += int(steps["fast"].done.sum())
        obs = {k: s.obs for k, s in steps.items()}
    assert finished > 0  # the autoreset's fresh battles are compared too
    for a, b in zip(dataclasses.astuple(fast.state), dataclasses.astuple(plain.state),
                    strict=True):
        assert torch.equal(a, b) and not a.is_inference()
    step = steps["fast"]
    assert not any(t.is_inference() for t in (step.obs.obs, step.final_obs.state, step.reward,
                                              step.terminated, *step.info.values()))
    fast.state.health[0, 0] = 1.0  # in place, outside inference mode
    layer = torch.nn.Linear(step.obs.obs.shape[-1], 1)
    layer(step.obs.obs).sum().backward()  # inference tensors cannot be saved for backward
    assert layer.weight.grad is not None
