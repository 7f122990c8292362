"""``sc2:<map>``: the SMAC maps in the real StarCraft II game, through pysc2's raw interface.

Same observations, state, available actions and rewards as the simulator (``smac:<map>``);
the battle itself is the game's, and the enemies are the game's built-in AI (difficulty 7,
"VeryHard", by default, as SMAC). One game runs per copy, stepped one after the other.

Needs (see ``docs/envs/smac.md``): ``pip install 'marl-suite[sc2]'``; StarCraft II (on Linux
Blizzard's headless build) in ``$SC2PATH`` (default ``~/StarCraftII``); SMAC's map files in
``$SC2PATH/Maps/SMAC_Maps/``. :mod:`marl.envs.smac.sc2compat` makes pysc2 4.0 work on
current Python and protobuf. Without any of these, making the environment raises
:class:`~marl.envs.smac.sc2compat.SC2Unavailable` saying what to install.

Each step: the agents' actions go to the game as raw unit commands, the game advances 8 game
loops, and the units are read back (:mod:`marl.envs.smac.raw`). A new episode after the first
kills every unit through the debug interface; the map's trigger brings the armies back (as
SMAC). Finished copies reset inside ``step`` (the suite's autoreset), like every ``VecEnv``,
unless ``autoreset`` is set to False (the text bridge reads a finished battle's last state).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from marl.devices import available_device
from marl.envs.smac.env import SMACEnv, SMACState
from marl.envs.smac.maps import SMACMap
from marl.envs.smac.raw import RawBattle, RawCommand
from marl.envs.smac.sc2compat import SC2Unavailable, load
from marl.envs.smac.units import STEP_LOOPS
from marl.spec import Obs, Step

SC2_RACES = {"T": 1, "Z": 2, "P": 3}  # common_pb2.Race
DIFFICULTIES = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9,
                "A": 10}  # sc2api_pb2.Difficulty: VeryEasy … VeryHard (7), cheats 8–10
MAX_RESPAWN_LOOPS = 200  # game loops to wait for the armies to come back after a reset


class Game(Protocol):
    """What the bridge asks of one running game (pysc2's ``RemoteController`` has it)."""

    def game_info(self) -> Any: ...
    def observe(self) -> Any: ...
    def actions(self, request: Any) -> Any: ...
    def step(self, count: int = 1) -> Any: ...
    def debug(self, commands: Any) -> Any: ...


def find_map(scenario: SMACMap) -> Path:
    """The map file of ``scenario`` in the StarCraft II install; raises
    :class:`SC2Unavailable` naming what is missing."""
    sc2path = Path(os.environ.get("SC2PATH", Path.home() / "StarCraftII"))
    if not (sc2path / "Versions").is_dir():
        raise SC2Unavailable(
            f"StarCraft II is not installed in {sc2path} (set SC2PATH to its folder): get the "
            "Linux build from Blizzard's s2client-proto page, or the game on Windows/macOS")
    map_file = sc2path / "Maps" / "SMAC_Maps" / f"{scenario.name}.SC2Map"
    if not map_file.is_file():
        raise SC2Unavailable(f"the SMAC map {map_file} is missing: unzip SMAC's SMAC_Maps.zip "
                             f"into {sc2path / 'Maps'}")
    return map_file


def launch_game(scenario: SMACMap, difficulty: str, game_version: str | None,
                seed: int | None) -> tuple[Game, Callable[[], None]]:
    """Start StarCraft II on the map and join it as the allied player; returns the game and
    a function that closes it."""
    sc2 = load()
    map_file = find_map(scenario)
    run_config = sc2.run_configs.get(version=game_version)
    process = run_config.start(version=game_version, want_rgb=False)
    game = process.controller
    sc_pb = sc2.sc_pb
    create = sc_pb.RequestCreateGame(
        local_map=sc_pb.LocalMap(map_path=str(map_file),
                                 map_data=run_config.map_data(str(map_file))),
        realtime=False)
    if seed is not None:
        create.random_seed = seed
    create.player_setup.add(type=sc_pb.Participant)
    create.player_setup.add(type=sc_pb.Computer, race=SC2_RACES[scenario.enemy_units[0].race],
                            difficulty=DIFFICULTIES[difficulty])
    game.create_game(create)
    game.join_game(sc_pb.RequestJoinGame(race=SC2_RACES[scenario.ally_units[0].race],
                                         options=sc_pb.InterfaceOptions(raw=True, score=False)))
    return game, process.close


class SC2Env:
    """``num_envs`` real games of the SMAC map ``scenario`` as one ``VecEnv``.

    ``connect(scenario, seed)`` starts one game and returns ``(game, close)``; by default
    :func:`launch_game` (tests pass a scripted game)."""

    def __init__(self, scenario: SMACMap, num_envs: int = 1, device: str | torch.device = "cpu",
                 *, difficulty: str = "7", game_version: str | None = None,
                 seed: int | None = None,
                 connect: Callable[[SMACMap, int | None], tuple[Game, Callable[[], None]]]
                 | None = None) -> None:
        self.scenario = scenario
        self.num_envs = num_envs
        self.device = available_device(device)
        self.sc2 = load()
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty {difficulty!r}: one of {sorted(DIFFICULTIES)}")
        if connect is None:
            find_map(scenario)  # fail now, saying what to install, not at the first reset
        self._connect = connect or (lambda m, s: launch_game(m, difficulty, game_version, s))
        self._seed = seed
        self.sims = [SMACEnv(scenario, 1, self.device, validate=False) for _ in range(num_envs)]
        self.spec = self.sims[0].spec
        self.battles = [RawBattle(sim) for sim in self.sims]
        self.games: list[Game] = []
        self._closers: list[Callable[[], None]] = []
        self.states: list = []
        self.last_obs: Obs | None = None  # what the agents saw last (validates the next step)
        self.autoreset = True  # False: a finished battle stays over until reset()

    # --- the game ----------------------------------------------------------------------------
    def _start(self, seed: int | None) -> None:
        for i in range(self.num_envs):
            game, close = self._connect(self.scenario, None if seed is None else seed + i)
            self.games.append(game)
            self._closers.append(close)
            self.battles[i].set_terrain(game.game_info())

    def _units(self, i: int) -> Any:
        return self.games[i].observe().observation.raw_data.units

    def _new_episode(self, i: int, first: bool) -> None:
        game, battle = self.games[i], self.battles[i]
        if not first:  # kill everyone; the map's trigger respawns both armies
            tags = [u.tag for u in self._units(i)]
            if tags:
                debug = self.sc2.debug_pb
                game.debug([debug.DebugCommand(kill_unit=debug.DebugKillUnit(tag=tags))])
            game.step(2)
        m = self.scenario
        for _ in range(MAX_RESPAWN_LOOPS):
            units = self._units(i)
            allies = sum(u.owner == 1 and u.health > 0 for u in units)
            enemies = sum(u.owner == 2 and u.health > 0 for u in units)
            if (allies, enemies) == (m.n_agents, m.n_enemies):
                self.states[i] = battle.begin(units)
                return
            game.step(1)
        raise RuntimeError(f"{m.name}: the armies did not appear within {MAX_RESPAWN_LOOPS} "
                           "game loops of a reset")

    def _send(self, i: int, commands: list[RawCommand]) -> None:
        sc_pb, raw_pb = self.sc2.sc_pb, self.sc2.raw_pb
        actions = []
        for c in commands:
            cmd = raw_pb.ActionRawUnitCommand(ability_id=c.ability, unit_tags=[c.unit],
                                              queue_command=False)
            if c.target_unit is not None:
                cmd.target_unit_tag = c.target_unit
            if c.target_point is not None:
                cmd.target_world_space_pos.x, cmd.target_world_space_pos.y = c.target_point
            actions.append(sc_pb.Action(action_raw=raw_pb.ActionRaw(unit_command=cmd)))
        self.games[i].actions(sc_pb.RequestAction(actions=actions))

    @property
    def state(self) -> SMACState:
        """Every game's battle as the simulator's state, ``[B, ...]`` (read off the game)."""
        if not self.states or self.states[0] is None:
            raise RuntimeError("SC2Env.state read before reset()")
        return SMACState(**{f.name: torch.cat([getattr(s, f.name) for s in self.states])
                            for f in dataclasses.fields(SMACState)})

    # --- VecEnv --------------------------------------------------------------------------------
    def _observe(self) -> Obs:
        parts = [sim.observe(s) for sim, s in zip(self.sims, self.states, strict=True)]
        return Obs(*(torch.cat([getattr(p, f) for p in parts]) for f in ("obs", "state",
                                                                        "avail")))

    def reset(self, *, seed: int | None = None) -> Obs:
        first = not self.games
        if first:
            self._start(self._seed if seed is None else seed)
            self.states = [None] * self.num_envs
        for i in range(self.num_envs):
            self._new_episode(i, first)
        self.last_obs = self._observe()
        return self.last_obs

    def step(self, actions: torch.Tensor) -> Step:
        if not self.games or self.last_obs is None:
            raise RuntimeError("call reset() before step()")
        actions = actions.to("cpu", torch.long)
        expected = (self.num_envs, self.spec.n_agents)
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions have shape {list(actions.shape)}, not {list(expected)}")
        avail = self.last_obs.avail.cpu()
        if not avail.gather(-1, actions.clamp(0, self.spec.n_actions - 1)[..., None]).all() \
                or (actions < 0).any() or (actions >= self.spec.n_actions).any():
            raise ValueError("an agent chose an unavailable action")
        rewards, terminated, truncated, won, dead_a, dead_e = [], [], [], [], [], []
        for i in range(self.num_envs):
            before = self.states[i]
            self._send(i, self.battles[i].commands(actions[i], before))
            self.games[i].step(STEP_LOOPS)
            self.states[i] = self.battles[i].read(self._units(i), before, actions[i])
            reward, term, trunc, info = self.sims[i].outcome(before, self.states[i])
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc)
            won.append(info["won"])
            dead_a.append(info["dead_allies"])
            dead_e.append(info["dead_enemies"])
        final = self._observe()
        done = torch.cat(terminated) | torch.cat(truncated)
        if not self.autoreset:
            done.zero_()
        for i in done.nonzero().flatten().tolist():
            self._new_episode(i, first=False)
        obs = self._observe() if done.any() else final
        self.last_obs = obs
        info = {"won": torch.cat(won), "dead_allies": torch.cat(dead_a),
                "dead_enemies": torch.cat(dead_e)}
        return Step(obs=obs, reward=torch.cat(rewards), terminated=torch.cat(terminated),
                    truncated=torch.cat(truncated), final_obs=final,
                    info={k: v.to(self.device) for k, v in info.items()})

    def close(self) -> None:
        for close in self._closers:
            close()
        self.games, self._closers = [], []
