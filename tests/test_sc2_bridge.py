"""The StarCraft II bridge without the game: pysc2 loading, the raw translation layer, and the
``sc2:<map>`` environment driven by a scripted game that speaks the raw protocol.

The scripted game is the built-in simulator behind pysc2's message types: it lists its units
as ``raw_pb2.Unit`` messages (allies with SMAC-style custom type ids, enemies with SC2's),
decodes the raw commands it receives back into actions, and advances 8 game loops per step.
The bridge must then give exactly what the simulator gives for the same battle.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch

from marl.envs import make
from marl.envs.smac import MAPS, SMACEnv
from marl.envs.smac.raw import (
    ATTACK,
    HEAL,
    MOVE,
    SC2_UNIT_TYPES,
    STOP,
    RawBattle,
    RawCommand,
    pathing_grid,
)
from marl.envs.smac.sc2 import SC2Env
from marl.envs.smac.sc2compat import SC2Unavailable, fixed_shuffle, load

pytestmark = pytest.mark.usefixtures("one_thread")
CUSTOM_BASE = 1970  # SMAC's maps give the allied units custom type ids from about here
TAG_BASE = 0x100000001

try:
    sc2 = load()  # pysc2's protocol modules
except SC2Unavailable:  # pysc2 is not installed: the tests that use it skip
    sc2 = None


@pytest.fixture
def pysc2():
    """pysc2, or the test is skipped where it is not installed."""
    return pytest.importorskip("pysc2")


needs_pysc2 = pytest.mark.usefixtures("pysc2")


@needs_pysc2
def test_pysc2_imports_and_its_fixed_shuffle_is_the_old_one():
    from pysc2.lib import colors, features  # noqa: F401  (fails on 3.11 without the fix)

    assert fixed_shuffle(list(range(5))) == [0, 3, 1, 4, 2]  # shuffle(x, lambda: 0.5) by hand
    assert (colors.shuffled_hue(5) == colors.smooth_hue_palette(5)[[0, 3, 1, 4, 2]]).all()
    obs = sc2.sc_pb.ResponseObservation()
    u = obs.observation.raw_data.units.add(unit_type=48, owner=1, tag=7, health=45.0)
    u.pos.x, u.pos.y = 3.5, 4.0
    back = sc2.sc_pb.ResponseObservation.FromString(obs.SerializeToString())
    assert back.observation.raw_data.units[0].pos.y == 4.0


@needs_pysc2
def test_pathing_grid_reads_packed_bits_row_by_row():
    image = sc2.common_pb.ImageData(bits_per_pixel=1)
    image.size.x, image.size.y = 16, 3
    walkable = torch.ones(16, 3, dtype=torch.bool)
    walkable[5, 1] = walkable[12, 2] = False
    bits = walkable.T.flatten().tolist()  # row y = 0 first, x within a row
    image.data = bytes(int("".join("1" if b else "0" for b in bits[i: i + 8]), 2)
                       for i in range(0, len(bits), 8))
    assert torch.equal(pathing_grid(image), walkable)


def unit_type(env: SMACEnv, slot: int, kind: int) -> int:
    name = env.scenario.kinds[kind].name
    if slot < env.n_agents:
        order = env.scenario.types or (name,)
        return CUSTOM_BASE + order.index(name)
    return SC2_UNIT_TYPES[name]


def raw_units(env: SMACEnv, state) -> list:
    """The living units of copy 0 of ``state`` as the game lists them."""
    obs = sc2.sc_pb.ResponseObservation()
    k = env.table.take(state.kind[0])
    for i in range(env.n_units):
        if state.health[0, i] <= 0:
            continue
        u = obs.observation.raw_data.units.add(
            unit_type=unit_type(env, i, int(state.kind[0, i])), owner=1 if i < env.n_agents else 2,
            tag=TAG_BASE + i, health=float(state.health[0, i]),
            health_max=float(k.max_health[i]), shield=float(state.shield[0, i]),
            shield_max=float(k.max_shield[i]), energy=float(state.energy[0, i]),
            weapon_cooldown=float(state.cooldown[0, i]))
        u.alliance = 1 if i < env.n_agents else 4
        u.pos.x, u.pos.y = state.pos[0, i].tolist()
    return list(obs.observation.raw_data.units)


def in_bridge_order(state, tags: list[int], n: int):
    """``state`` with its units in the bridge's slot order, given by the units' ``tags``."""
    perm = torch.tensor([tag - TAG_BASE for tag in tags])
    fields = {f: v[:, perm] for f, v in vars(state).items()
              if f not in ("last_action", "t")}
    return dataclasses.replace(state, **fields, last_action=state.last_action[:, perm[:n]])


@needs_pysc2
@pytest.mark.parametrize("name", ["3m", "2s3z", "MMM", "bane_vs_bane"])
def test_raw_units_read_back_give_the_simulators_observation_and_reward(name):
    sim = make(f"smac:{name}", num_envs=1, seed=3, validate=False)
    obs = sim.reset(seed=3)
    g = torch.Generator().manual_seed(0)
    battle = RawBattle(make(f"smac:{name}", num_envs=1, validate=False))
    state = battle.begin(raw_units(sim, sim.state))
    assert battle.tags[sim.n_agents:] == [TAG_BASE + i for i in range(sim.n_agents, sim.n_units)]
    same = battle.sim.observe(state)
    truth = sim.observe(in_bridge_order(sim.state, battle.tags, sim.n_agents))
    assert torch.equal(same.obs, truth.obs) and torch.equal(same.state, truth.state)
    assert torch.equal(same.avail, truth.avail)
    for _ in range(12):
        before_sim, before = sim.state, state
        actions = torch.rand(obs.avail.shape, generator=g).masked_fill(~obs.avail, -1).argmax(-1)
        step = sim.step(actions)
        if step.done.any():
            break
        perm = torch.tensor([t - TAG_BASE for t in battle.tags[: sim.n_agents]])
        state = battle.read(raw_units(sim, sim.state), before, actions[0, perm])
        ours = battle.sim.observe(state)
        truth = sim.observe(in_bridge_order(sim.state, battle.tags, sim.n_agents))
        assert torch.allclose(ours.obs, truth.obs) and torch.allclose(ours.state, truth.state)
        reward, terminated, _, info = battle.sim.outcome(before, state)
        assert reward.sum() == pytest.approx(float(step.reward.sum()), abs=1e-5)
        assert not terminated.any() and not info["won"].any()
        assert in_bridge_order(before_sim, battle.tags, sim.n_agents).t == before.t
        obs = step.obs


@needs_pysc2
def test_commands_are_smacs_raw_orders():
    sim = make("smac:MMM", num_envs=1, seed=0, validate=False)
    sim.reset(seed=0)
    battle = RawBattle(make("smac:MMM", num_envs=1, validate=False))
    state = battle.begin(raw_units(sim, sim.state))
    n = sim.n_agents  # Marauders 0-1, Marines 2-8, the Medivac 9
    actions = torch.tensor([1, 4, 6 + 3] + [0] * 6 + [6 + 2])
    tags = battle.tags
    x, y = state.pos[0, 1].tolist()
    assert battle.commands(actions, state) == [
        RawCommand(STOP, tags[0]), RawCommand(MOVE, tags[1], target_point=(x + 2, y)),
        RawCommand(ATTACK, tags[2], target_unit=tags[n + 3]),
        RawCommand(HEAL, tags[9], target_unit=tags[2])]


@needs_pysc2
def test_units_that_are_not_the_maps_are_refused():
    sim = make("smac:3m", num_envs=1, seed=0, validate=False)
    sim.reset(seed=0)
    units = raw_units(sim, sim.state)
    units[4].unit_type = SC2_UNIT_TYPES["zealot"]
    with pytest.raises(ValueError, match="not the map's"):
        RawBattle(make("smac:3m", num_envs=1, validate=False)).begin(units)
    with pytest.raises(ValueError, match="1 allied and 3 enemy"):
        RawBattle(make("smac:3m", num_envs=1, validate=False)).begin(units[2:])


class ScriptedGame:
    """A StarCraft II stand-in: the simulator behind the raw protocol's messages."""

    def __init__(self, name: str, seed: int) -> None:
        self.env = make(f"smac:{name}", num_envs=1, seed=seed, validate=False)
        self.env.reset(seed=seed)
        self.state = self.env.state
        self.orders = torch.zeros(1, self.env.n_agents, dtype=torch.long)
        self.loops = 0
        self.respawn_in = 0
        self.truth: list = []  # (state before, actions, state after, reward) per env step

    def game_info(self):
        info = sc2.sc_pb.ResponseGameInfo()
        raw = info.start_raw
        raw.pathing_grid.bits_per_pixel = 1
        raw.pathing_grid.size.x = raw.pathing_grid.size.y = 32
        raw.pathing_grid.data = bytes([255]) * (32 * 32 // 8)
        raw.playable_area.p1.x = raw.playable_area.p1.y = 32
        return info

    def observe(self):
        obs = sc2.sc_pb.ResponseObservation()
        if self.respawn_in == 0:
            obs.observation.raw_data.units.extend(raw_units(self.env, self.state))
        return obs

    def actions(self, request) -> None:
        n = self.env.n_agents
        self.orders = torch.zeros(1, n, dtype=torch.long)
        for action in request.actions:
            cmd = action.action_raw.unit_command
            slot = cmd.unit_tags[0] - TAG_BASE
            if cmd.ability_id == STOP:
                a = 1
            elif cmd.ability_id == MOVE:
                d = torch.tensor([cmd.target_world_space_pos.x, cmd.target_world_space_pos.y])
                d = d - self.state.pos[0, slot]
                a = 4 if d[0] > 1 else 5 if d[0] < -1 else 2 if d[1] > 1 else 3
            else:
                a = 6 + cmd.target_unit_tag - TAG_BASE - (n if cmd.ability_id == ATTACK else 0)
            self.orders[0, slot] = a

    def step(self, count: int = 1) -> None:
        if self.respawn_in:  # armies come back a few loops after a reset
            self.respawn_in = max(self.respawn_in - count, 0)
            return
        assert count == 8, "the bridge steps 8 game loops"
        before = self.state
        after, reward, *_ = self.env._step(before, self.orders)  # the raw transition
        self.truth.append((before, self.orders.clone(), after, float(reward.sum())))
        self.state = after

    def debug(self, commands) -> None:
        assert len(commands[0].kill_unit.tag) > 0
        self.state = self.env._spawn(1)
        self.respawn_in = 3


@needs_pysc2
@pytest.mark.parametrize("name", ["3m", pytest.param("2s3z", marks=pytest.mark.slow)])
def test_sc2_env_plays_a_scripted_game_exactly_as_the_simulator(name):
    games: list[ScriptedGame] = []

    def connect(scenario, seed):
        games.append(ScriptedGame(scenario.name, seed))
        return games[-1], lambda: None

    env = make(f"sc2:{name}", num_envs=2, seed=5, connect=connect)
    assert env.spec == make(f"smac:{name}").spec
    obs = env.reset()
    g = torch.Generator().manual_seed(1)
    episodes = 0
    for _ in range(150):
        actions = torch.rand(obs.avail.shape, generator=g).masked_fill(~obs.avail, -1).argmax(-1)
        tags = [list(b.tags) for b in env.battles]  # a new episode reassigns them
        step = env.step(actions)
        for i, game in enumerate(games):
            before, orders, after, reward = game.truth[-1]
            battle = env.battles[i]
            perm = torch.tensor([t - TAG_BASE for t in tags[i][: env.spec.n_agents]])
            assert torch.equal(orders[0, perm], actions[i])  # the commands decode back
            assert float(step.reward[i].sum()) == pytest.approx(reward, abs=1e-5)
            seen = battle.sim.observe(in_bridge_order(after, tags[i], env.spec.n_agents))
            assert torch.allclose(step.final_obs.obs[i], seen.obs[0])
            assert torch.allclose(step.final_obs.state[i], seen.state[0])
        episodes += int(step.done.sum())
        obs = step.obs
    assert episodes >= 2  # copies finished battles and the bridge started new ones
    with pytest.raises(ValueError, match="unavailable"):
        env.step(torch.full((2, env.spec.n_agents), 0))
    env.close()


def test_without_pysc2_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pysc2", None)  # as if it were not installed
    with pytest.raises(SC2Unavailable, match="pip install"):
        make("sc2:3m")
    with pytest.raises(ValueError, match="generated"):  # the raw layer needs no pysc2
        RawBattle(make("smacv2:protoss_5_vs_5", num_envs=1))


@needs_pysc2
def test_without_the_game_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SC2PATH", str(tmp_path))
    with pytest.raises(SC2Unavailable, match="StarCraft II is not installed"):
        make("sc2:3m")
    (tmp_path / "Versions").mkdir()
    with pytest.raises(SC2Unavailable, match="SMAC_Maps.zip"):
        make("sc2:3m")
    with pytest.raises(ValueError, match="difficulty"):
        SC2Env(MAPS["3m"], difficulty="11", connect=lambda m, s: None)


@needs_pysc2
def test_the_text_bridge_commands_units_of_the_game_by_their_tags():
    from marl import llm

    games: list[ScriptedGame] = []

    def connect(scenario, seed):
        games.append(ScriptedGame(scenario.name, seed))
        return games[-1], lambda: None

    battles = llm.make("llm-sc2:3m", 1, seed=5, connect=connect)
    obs = battles.reset(seed=5)[0]
    tags = battles.env.battles[0].tags
    assert f"Tag: 0x{tags[0]:x}" in obs["Marine-1"]  # the game's tags, not made-up ones
    target = f"0x{tags[3]:x}"
    attack = 6 + tags[3] - TAG_BASE - 3  # what the game sees: attack enemy slot tags[3]
    text = f"Actions:\n  Team Marine-1:\n    <Attack_Unit({target})>\n"
    for _ in range(8):
        battles.step([{"Marine-1": text}])
    first = tags[0] - TAG_BASE
    sent = [int(orders[0, first]) for _, orders, _, _ in games[0].truth]
    alive = [a for a in sent if a != 0]  # 0: nothing sent (the marine died, fighting alone)
    assert alive[-1] == attack and all(a in (2, 3, 4, 5) for a in alive[:alive.index(attack)])
    assert set(alive[alive.index(attack):]) == {attack}  # walked into range, then shot
    battles.env.close()
