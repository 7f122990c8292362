"""SMAC's unit rules in the simulator: the enemy's targeting, air and ground, line and splash
damage, SMACv2's reward clip. Hand-placed units, one copy, validation off."""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path

import pytest
import torch

from marl.envs import make
from marl.envs.smac import MAPS
from marl.envs.smac.env import ATTACK, CHASE, MOVE, SMACEnv

pytestmark = pytest.mark.usefixtures("one_thread")


def placed(env_id: str, where: dict[int, tuple[float, float]]) -> tuple[SMACEnv, object]:
    """One copy of ``env_id`` in which only the units ``where`` names (allies first) are
    alive, at those positions."""
    env = make(env_id, num_envs=1, seed=0, validate=False)
    env.reset(seed=0)
    s = env.state
    keep = torch.zeros(env.n_units, dtype=torch.bool)
    keep[list(where)] = True
    pos = s.pos.clone()
    for unit, xy in where.items():
        pos[0, unit] = torch.tensor(xy)
    s = dataclasses.replace(s, health=s.health * keep, shield=s.shield * keep, pos=pos)
    env.set_state(s)
    return env, s


def stop_all(env: SMACEnv, **orders: int) -> torch.Tensor:
    """Every living agent stops (the dead: no-op), except ``a<i>=action`` overrides."""
    alive = env.state.health[0, : env.n_agents] > 0
    actions = alive.long().unsqueeze(0).clone()
    for key, action in orders.items():
        actions[0, int(key[1:])] = action
    return actions


def test_an_enemy_keeps_its_target_in_range_although_another_ally_is_closer():
    n = MAPS["3m"].n_agents
    env, _ = placed("smac:3m", {0: (20.0, 16.0), 1: (28.0, 28.0), n: (16.0, 16.0)})
    env.step(stop_all(env))
    assert env.state.order[0, n] == ATTACK and env.state.target[0, n] == 0
    s = env.state
    s.pos[0, 1] = torch.tensor([17.5, 16.0])  # now much closer than ally 0
    env.set_state(s)
    for _ in range(3):
        env.step(stop_all(env))
        assert env.state.target[0, n] == 0  # still shooting ally 0
    assert env.state.health[0, 1] == 45 and env.state.health[0, 0] < 45


def test_an_enemy_whose_target_leaves_switches_to_an_ally_attacking_it():
    n = MAPS["3m"].n_agents
    env, _ = placed("smac:3m", {0: (20.0, 16.0), 1: (28.0, 28.0), 2: (28.0, 4.0),
                               n: (16.0, 16.0)})
    env.step(stop_all(env))
    assert env.state.target[0, n] == 0
    s = env.state
    s.pos[0, 0] = torch.tensor([30.0, 16.0])  # out of the enemy's scan range
    s.pos[0, 1] = torch.tensor([17.0, 17.0])  # the closest, but passive
    s.pos[0, 2] = torch.tensor([16.0, 21.5])  # shoots the enemy from 5.5 away
    env.set_state(s)
    env.step(stop_all(env, a2=6))
    assert env.state.order[0, n] == ATTACK and env.state.target[0, n] == 2
    # with no ally in reach and none attacking it, it attack-moves to the map's point
    env2, _ = placed("smac:3m", {0: (30.0, 30.0), n: (16.0, 16.0)})
    env2.step(stop_all(env2))
    assert env2.state.order[0, n] == MOVE
    assert env2.state.dest[0, n].tolist() == pytest.approx(list(MAPS["3m"].attack_point))


def test_an_enemy_whose_target_steps_out_of_its_weapon_range_turns_on_its_attacker():
    """A target is kept while it stays within the enemy's *weapon* range (SMAClite's
    attack-move drops it once it is not); then an ally attacking the enemy comes first. So one
    hydralisk cannot lead every zealot away while the others shoot them (a trained policy
    won 6h_vs_8z that way when a target was kept anywhere within the 5 of scan range)."""
    n = MAPS["6h_vs_8z"].n_agents
    env, _ = placed("smac:6h_vs_8z", {0: (15.0, 12.6), 1: (11.0, 14.0), n: (15.0, 14.0)})
    env.step(stop_all(env))
    assert env.state.order[0, n] == ATTACK and env.state.target[0, n] == 0  # the closest
    s = env.state
    s.pos[0, 0] = torch.tensor([15.0, 9.5])  # out of melee range, well within scan range
    env.set_state(s)
    env.step(stop_all(env, a1=6))  # ally 1 shoots the zealot
    assert env.state.order[0, n] == ATTACK and env.state.target[0, n] == 1


def test_an_enemy_idle_at_its_point_is_sent_after_the_closest_ally():
    """SMAC's enemy is a computer player: its idle army goes after the allies, so hiding out
    of scan range does not stall the battle; a Spine Crawler (it cannot walk) stays put."""
    n = MAPS["3m"].n_agents
    point = MAPS["3m"].attack_point
    env, _ = placed("smac:3m", {0: (28.0, 9.0), 1: (30.0, 22.0), n: point})
    env.step(stop_all(env))
    assert env.state.order[0, n] == CHASE and env.state.target[0, n] == 0
    n = MAPS["2s_vs_1sc"].n_agents
    env, s = placed("smac:2s_vs_1sc", {0: (18.5, 8.5), n: (13.92, 20.04)})  # out of scan
    env.step(stop_all(env))
    assert env.state.order[0, n] == MOVE


def test_smacv2_orders_idle_enemies_onto_the_closest_ally_wherever_it_is():
    env = make("smacv2:terran_5_vs_5", num_envs=1, seed=0, validate=False)
    env.reset(seed=0)
    n = env.n_agents
    s = env.state
    keep = torch.zeros(env.n_units, dtype=torch.bool)
    keep[[0, 1, n]] = True
    s = dataclasses.replace(s, health=s.health * keep, shield=s.shield * keep,
                            pos=s.pos.clone(), kind=s.kind.clone())
    marine = env.scenario.kinds.index(next(t for t in env.scenario.kinds if t.name == "marine"))
    s.kind[0, [0, 1, n]] = marine
    s.health[0, [0, 1, n]] = 45.0
    s.pos[0, 0], s.pos[0, 1], s.pos[0, n] = (torch.tensor([2.0, 2.0]), torch.tensor([30.0, 2.0]),
                                             torch.tensor([26.0, 28.0]))
    env.set_state(s)
    env.step(stop_all(env))
    assert env.state.order[0, n] == CHASE and env.state.target[0, n] == 1


def test_marauders_and_the_enemy_ai_cannot_target_a_medivac():
    m = MAPS["MMM"]  # marauders 0-1, marines 2-8, medivac 9 on each side
    n = m.n_agents
    env, _ = placed("smac:MMM", {0: (16.0, 16.0), 2: (16.0, 17.0), n + 9: (18.0, 16.0)})
    avail = env.last_obs.avail[0]
    assert not avail[0, 6 + 9] and avail[2, 6 + 9]
    for _ in range(3):  # the Marauder ordered onto it anyway does nothing to it
        env.step(stop_all(env, a0=6 + 9))
    assert env.state.health[0, n + 9] == 150
    # an enemy Marauder next to the allied Medivac never attacks it (a Marine far away
    # keeps the battle going: a side left with only a Medivac has lost)
    env, _ = placed("smac:MMM", {9: (16.0, 16.0), 2: (30.0, 30.0), n: (17.0, 16.0)})
    for _ in range(5):
        env.step(stop_all(env))
        assert env.state.order[0, n] == MOVE
    assert env.state.health[0, 9] == 150


def test_an_enemy_marine_ranks_the_medivac_with_the_allies_that_can_hurt_it():
    """SC2's AlwaysThreatens flag (SMAC's Medivac_RL copies carry it): the built-in AI ranks
    a Medivac with the units that can hurt it, so an enemy Marine shoots the closest of a
    Medivac and a Marine, not the Marine first because the Medivac has no weapon."""
    n = MAPS["MMM"].n_agents  # marauders 0-1, marines 2-8, medivac 9 on each side
    env, _ = placed("smac:MMM", {9: (18.0, 16.0), 2: (19.5, 16.0), n + 2: (16.0, 16.0)})
    env.step(stop_all(env))
    assert env.state.order[0, n + 2] == ATTACK and env.state.target[0, n + 2] == 9
    assert env.state.health[0, 9] < 150 and env.state.health[0, 2] == 45
    # the closer Marine comes first
    env, _ = placed("smac:MMM", {9: (19.5, 16.0), 2: (18.0, 16.0), n + 2: (16.0, 16.0)})
    env.step(stop_all(env))
    assert env.state.target[0, n + 2] == 2


def test_a_colossus_line_hits_exactly_the_units_across_its_target():
    m = MAPS["1c3s5z"]  # colossus, 3 stalkers, 5 zealots on each side
    n = m.n_agents
    target = n + 4  # an enemy zealot straight east of the colossus
    env, _ = placed("smac:1c3s5z", {
        0: (10.0, 16.0), target: (15.0, 16.0),
        n + 5: (15.0, 17.6),  # on the line, 1.6 along it: its edge is within 1.4
        n + 6: (15.0, 18.2),  # 2.2 along it: beyond the end
        n + 7: (15.3, 14.8),  # 0.3 off the line's middle, touching it
        n + 8: (16.0, 15.0),  # 1.0 off the line: clear
    })
    env.step(stop_all(env, a0=6 + 4))
    shield = env.state.shield[0]
    # 2 hits of 10 + 5 (light) on each zealot struck: 30 of its 50 shields
    assert shield[[target, n + 5, n + 7]].tolist() == pytest.approx([20.0] * 3)
    assert shield[[n + 6, n + 8]].tolist() == pytest.approx([50.0] * 2)


def test_a_baneling_splash_reaches_units_by_their_edges():
    n = MAPS["bane_vs_bane"].n_agents  # banelings 0-3, zerglings 4-23 on each side
    env, _ = placed("smac:bane_vs_bane", {
        n: (16.0, 16.0),  # the enemy Baneling
        4: (16.8, 16.0),  # its target, in reach
        5: (16.0, 18.5),  # centre 2.5 away, edge 2.125: inside the 2.2 splash
        6: (18.7, 16.0),  # centre 2.7 away, edge 2.325: outside
        n + 4: (30.0, 2.0),  # an enemy Zergling far away keeps the battle going
    })
    env.step(stop_all(env))
    health = env.state.health[0]
    assert health[n] == 0  # it blew up
    assert health[4] == 0 and health[5] == 0  # 16 + 19 (light) kills a Zergling
    assert health[6] == pytest.approx(35.0)


@pytest.mark.parametrize("env_id, expect_reward", [("smac:2s3z", True),
                                                   ("smacv2:protoss_5_vs_5", False)])
def test_regenerating_shields_pay_in_smac_and_not_in_smacv2(env_id, expect_reward):
    """SMAC's reward is the absolute value of the damage dealt (a quirk: enemy shields that
    regenerate pay), SMACv2's is clipped at 0."""
    env = make(env_id, num_envs=1, seed=0, validate=False)
    env.reset(seed=0)
    n = env.n_agents
    s = env.state
    keep = torch.zeros(env.n_units, dtype=torch.bool)
    keep[[0, n]] = True
    s = dataclasses.replace(s, health=s.health * keep, shield=s.shield * keep * 0.5,
                            pos=s.pos.clone(), quiet=torch.full_like(s.quiet, 1000.0))
    s.pos[0, 0], s.pos[0, n] = torch.tensor([2.0, 2.0]), torch.tensor([30.0, 30.0])
    env.set_state(s)
    step = env.step(stop_all(env))
    assert env.state.shield[0, n] > s.shield[0, n]  # it regenerated
    assert (step.reward.sum() > 0) == expect_reward


def test_a_crowd_of_zealots_strikes_at_its_weapon_rate_and_beats_standing_hydralisks():
    """Zealots crowding round hydralisks push each other about; every one touching a
    hydralisk must still strike at its weapon's rate (16 damage per 0.86 s + the random delay:
    ~0.81 health per game loop), so six hydralisks that stand and shoot the closest zealot lose
    to eight zealots, as SC2's numbers say they must (~149 zealot damage per second against 480
    health; ~122 hydralisk damage per second against 1,200 health and shields). A step towards
    the target used to end on the range's edge and a neighbour's push put the zealot back out
    before it could fire: the zealots struck at ~40% of their rate and the hydralisks won."""
    env = make("smac:6h_vs_8z", num_envs=64, seed=0, validate=False)
    env.autoreset = False
    n = env.n_agents
    obs = env.reset(seed=1)
    active = torch.ones(64, dtype=torch.bool)
    won = torch.zeros(64, dtype=torch.bool)
    touching_loops = lost = 0.0
    for _ in range(env.spec.episode_limit):
        s = env.state
        alive = s.health > 0
        shoot = obs.avail[..., 6:].bool()
        closest = (torch.cdist(s.pos[:, :n], s.pos[:, n:])
                   .masked_fill(~shoot, float("inf")).argmin(-1))
        actions = torch.where(shoot.any(-1), closest + 6, 1)
        actions = torch.where(obs.avail[..., 0].bool(), 0, actions)
        gap = torch.cdist(s.pos[:, :n], s.pos[:, n:]) - 0.625 - 0.5
        touching = ((gap <= 0.15) & alive[:, :n, None] & alive[:, None, n:]).any(1).sum(-1)
        health = s.health[:, :n].sum(-1)
        step = env.step(actions)
        touching_loops += 8 * float(touching[active].sum())
        lost += float((health - env.state.health[:, :n].sum(-1))[active].sum())
        won |= step.info["won"].bool() & active
        active &= ~step.done.bool()
        obs = step.obs
        if not active.any():
            break
    assert not active.any()
    # health lost per loop and zealot within 0.15 of a hydralisk (a step's arrivals strike too)
    assert 0.65 <= lost / touching_loops <= 1.1
    assert won.float().mean() <= 0.05


def test_stalkers_that_kite_beat_five_zealots_and_stalkers_that_stand_lose():
    """3s_vs_5z is won in the game by kiting: Stalkers outrun (4.13 against 3.15) and outrange
    (6 against 0.1) Zealots, so stepping away while the weapon cools and focusing fire wins;
    standing and shooting loses to the Zealots' damage. scripts/smac_scripted.py's ``kite``,
    ``blindkite`` (no cooldown: what a feed-forward agent observes is enough) and ``closest``
    policies, 32 battles each."""
    script = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "smac_scripted.py"))
    kite = script["battles"]("3s_vs_5z", "kite", 32, 0)
    blind = script["battles"]("3s_vs_5z", "blindkite", 32, 0)
    stand = script["battles"]("3s_vs_5z", "closest", 32, 0)
    assert kite["win_rate"] >= 0.9 and blind["win_rate"] >= 0.9 and stand["win_rate"] <= 0.05
