"""Several players in one world of the ``crafter`` engine, as a PettingZoo ``ParallelEnv``.

The world, its generation, the objects and their rules, and the textures are the package's own
(``crafter.engine``, ``crafter.objects``, ``crafter.worldgen``); what is ours is the part a
single-player environment does not need (the module card, :mod:`marl.envs.crafter`, lists it).
"""

from __future__ import annotations

import functools
import string
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl.envs.crafter.rules import (
    ACHIEVEMENTS,
    ACTIONS,
    GIVE_ITEMS,
    INVENTORY,
    MAC_DIFFICULTY,
    MAC_ITEM_VALUE,
    OBJECT_KINDS,
    TEXT_MAX,
    VITALS,
    NearestPlayer,
    QuietWorld,
    available,
    describe,
    give,
    symbolic_view,
)

OBS_TYPES = ("rgb", "symbolic", "text")
REWARDS = ("player", "team", "mac")
VIEW = (9, 9)  # cells of the egocentric view; the bottom rows show the inventory, as in Crafter


def _crafter() -> Any:
    try:
        import crafter
    except ImportError:
        raise ImportError("the 'crafter:' environments need the crafter package: "
                          "pip install 'marl-suite[crafter]'") from None
    return crafter


class MultiCrafter(ParallelEnv):
    """``players`` Crafter players in one world (see :mod:`marl.envs.crafter` for the rules)."""

    metadata: dict[str, Any] = {"name": "crafter_v1", "render_modes": ["rgb_array"],
                                "render_fps": 8, "is_parallelizable": True}

    def __init__(self, players: int = 2, *, obs_type: str = "rgb", reward: str = "player",
                 length: int = 10000, mobs: bool = True, size: int = 64, area: int = 64,
                 avail_all: bool = False, diamond_ends: bool = False, seed: int | None = None,
                 render_mode: str | None = None) -> None:
        crafter = _crafter()
        if not (isinstance(players, int) and 1 <= players <= 8):
            raise ValueError(f"crafter: players must be an integer in [1, 8], got {players!r}")
        if obs_type not in OBS_TYPES:
            raise ValueError(f"crafter: obs_type must be one of {OBS_TYPES}, got {obs_type!r}")
        if reward not in REWARDS:
            raise ValueError(f"crafter: reward must be one of {REWARDS}, got {reward!r}")
        for key, value, least in (("length", length, 1), ("size", size, 9), ("area", area, 16)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"crafter: {key} must be an integer >= {least}, got {value!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"crafter: render_mode must be None or 'rgb_array', "
                             f"got {render_mode!r}")
        self._engine, self._objects, self._worldgen = (crafter.engine, crafter.objects,
                                                       crafter.worldgen)
        self._constants = crafter.constants
        self.n_players, self.obs_type, self.reward_mode = players, obs_type, reward
        self.length, self.mobs, self.size, self.avail_all = length, mobs, size, avail_all
        self.diamond_ends = diamond_ends
        self.render_mode = render_mode
        self.max_episode_steps = length
        self._seed = int(np.random.randint(0, 2**31 - 1)) if seed is None else int(seed)
        self._episode = 0
        self.world = self._engine.World((area, area), self._constants.materials, (12, 12))
        self._textures = self._engine.Textures(self._constants.root / "assets")
        item_rows = int(np.ceil(len(self._constants.items) / VIEW[0]))
        self._local = self._engine.LocalView(self.world, self._textures,
                                             [VIEW[0], VIEW[1] - item_rows])
        self._items = self._engine.ItemView(self._textures, [VIEW[0], item_rows])
        self.possible_agents = [f"player_{i}" for i in range(players)]
        self.agents: list[str] = []
        self.players: list[Any] = []
        self._order = np.random.default_rng(self._seed)  # who acts first, per step
        self._step = 0
        self._last_health: list[int] = []
        self._unlocked: list[set[str]] = []
        self._last_actions: list[str] = []
        n_sym = self._symbolic_size()
        self._obs_space: spaces.Space
        if obs_type == "rgb":
            self._obs_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        elif obs_type == "symbolic":
            self._obs_space = spaces.Box(0.0, 1.0, (n_sym,), np.float32)
        else:
            self._obs_space = spaces.Text(max_length=TEXT_MAX, charset=string.printable)
        self.state_space = spaces.Box(0.0, 1.0, (players * (n_sym + 3),), np.float32)
        self._action_space = spaces.Discrete(len(ACTIONS))

    # --- spaces -----------------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_space

    def _symbolic_size(self) -> int:
        cells = VIEW[0] * (VIEW[1] - 2)
        return cells * (len(self._constants.materials) + len(OBJECT_KINDS)) + len(INVENTORY) \
            + len(VITALS) + 4 + 2

    # --- episodes ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None,
              options: dict | None = None) -> tuple[dict[str, Any], dict[str, dict]]:
        if seed is not None:
            self._seed, self._episode = int(seed), 0
            self._order = np.random.default_rng(self._seed)
        self._episode += 1
        self._step = 0
        # the seed of each episode, as crafter.Env draws it: one player's run equals crafter's
        self.world.reset(seed=hash((self._seed, self._episode)) % (2**31 - 1))
        self._update_time()
        cx, cy = self.world.area[0] // 2, self.world.area[1] // 2
        n = self.n_players
        self.players = [self._objects.Player(self.world, (cx + i - n // 2, cy))
                        for i in range(n)]
        for player in self.players:
            self.world.add(player)
        self._worldgen.generate_world(self.world, self.players[n // 2])
        self._retarget_or_remove_mobs()
        self.agents = list(self.possible_agents)
        self._last_health = [p.health for p in self.players]
        self._last_inventory = [dict(p.inventory) for p in self.players]
        self._unlocked = [set() for _ in self.players]
        self._last_actions = ["noop"] * n
        obs = self._observations([True] * n)
        return obs, self._infos(obs, [False] * n)

    def _retarget_or_remove_mobs(self) -> None:
        """World generation makes each zombie and skeleton hunt the anchor player; here they
        hunt the nearest living player (or are removed with ``mobs=False``)."""
        hunters = (self._objects.Zombie, self._objects.Skeleton)
        for obj in self.world.objects:
            if isinstance(obj, hunters):
                if self.mobs:
                    obj.player = NearestPlayer(self.players, obj)
                else:
                    self.world.remove(obj)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() called after the episode ended; call reset()")
        alive = [p.health > 0 for p in self.players]
        chosen = []
        for i, agent in enumerate(self.possible_agents):
            action = actions.get(agent, 0) if alive[i] else 0
            if not (isinstance(action, (int, np.integer)) and 0 <= action < len(ACTIONS)):
                raise ValueError(f"{agent}: action {action!r} is not an integer in "
                                 f"[0, {len(ACTIONS)})")
            chosen.append(ACTIONS[int(action)])
        self._step += 1
        self._update_time()
        self._last_actions = chosen
        self._update_objects(chosen, alive)
        if self._step % 10 == 0:
            for chunk, objs in self.world.chunks.items():
                self._balance_chunk(chunk, sorted(objs, key=self._added))
        obs = self._observations(alive)  # as crafter.Env: after balancing, before rewards
        rewards = self._rewards(alive)
        for i, player in enumerate(self.players):  # the dead leave the world
            if alive[i] and player.health <= 0:
                self.world.remove(player)
        dead = [p.health <= 0 for p in self.players]
        found = self.diamond_ends and any(p.achievements["collect_diamond"] > 0
                                          for p in self.players)  # ends it for the team
        over = self._step >= self.length
        ended = all(dead) or found or over
        infos = self._infos(obs, dead)
        if ended:
            figures = self.episode_figures()
            for info in infos.values():
                info["episode"] = figures
        live = [a for i, a in enumerate(self.possible_agents) if alive[i]]
        terminations = {a: dead[self.possible_agents.index(a)] or found for a in live}
        truncations = {a: over and not terminations[a] for a in live}
        out = ({a: obs[a] for a in live}, {a: rewards[a] for a in live}, terminations,
               truncations, {a: infos[a] for a in live})
        self.agents = [] if ended else [a for i, a in enumerate(self.possible_agents)
                                        if not dead[i]]
        return out

    def _update_objects(self, chosen: list[str], alive: list[bool]) -> None:
        """Players first, in an order drawn per step from the env's own generator (so nobody
        wins every race for a cell), then every other object within ``2 * max(view)`` of a
        player who was alive when the step began, in the world's order (Crafter's rule, for
        one player)."""
        others = [obj for obj in self.world.objects  # taken first, as crafter.Env does: what
                  if not isinstance(obj, self._objects.Player)]  # players add waits a step
        order = self._order.permutation(self.n_players) if self.n_players > 1 else [0]
        for i in order:
            player = self.players[i]
            if not alive[i]:
                continue
            player.action = chosen[i]
            if chosen[i].startswith("give_") and not player.sleeping:
                give(self.world, player, chosen[i][len("give_"):])
            player.update()
        acting = [p for i, p in enumerate(self.players) if alive[i]]
        reach = 2 * max(VIEW)
        for obj in others:
            if min(p.distance(obj) for p in acting) < reach:
                obj.update()

    def _rewards(self, alive: list[bool]) -> dict[str, float]:
        """Crafter's per player: +1 for each achievement unlocked the first time this episode,
        and the change in health / 10; ``reward=team`` gives every player the sum."""
        if self.reward_mode == "mac":
            return self._mac_rewards(alive)
        own = []
        for i, player in enumerate(self.players):
            if not alive[i]:
                own.append(0.0)
                continue
            r = (player.health - self._last_health[i]) / 10
            self._last_health[i] = player.health
            unlocked = {name for name, count in player.achievements.items()
                        if count > 0 and name not in self._unlocked[i]}
            if unlocked:
                self._unlocked[i] |= unlocked
                r += 1.0
            own.append(r)
        if self.reward_mode == "team":
            own = [sum(own)] * len(own)
        return dict(zip(self.possible_agents, own, strict=True))

    def _added(self, obj: Any) -> int:
        """Where ``obj`` stands in the world's list of objects (the order they were added).
        The engine keeps each chunk's objects in a set, whose order follows memory addresses,
        so crafter.Env picks the creature to despawn differently from run to run; in the
        order of adding, the same seed gives the same world."""
        return int(self.world._obj_map[tuple(obj.pos)])

    def _mac_rewards(self, alive: list[bool]) -> dict[str, float]:
        """DAMCS's shaped reward, per player: +3 for a move, +1 for any other action but noop,
        10 × the difficulty of each achievement the team unlocks for the first time in the
        episode (to the player who unlocked it), and 10 × the value of each unit of wood,
        stone, coal, iron or diamond gained. Counted at the step the change happens (DAMCS's
        code counts it at the start of the next step)."""
        out = []
        team = set().union(*self._unlocked)
        for i, player in enumerate(self.players):
            if not alive[i]:
                out.append(0.0)
                continue
            action = self._last_actions[i]
            r = 0.0 if action == "noop" else 3.0 if action.startswith("move_") else 1.0
            new = {name for name, count in player.achievements.items()
                   if count > 0 and name not in team}
            r += 10.0 * sum(MAC_DIFFICULTY[name] for name in new)
            team |= new
            self._unlocked[i] |= {name for name, count in player.achievements.items()
                                  if count > 0}
            for item, value in MAC_ITEM_VALUE.items():
                gained = player.inventory[item] - self._last_inventory[i][item]
                r += 10.0 * value * max(gained, 0)
            self._last_inventory[i] = dict(player.inventory)
            out.append(r)
        return dict(zip(self.possible_agents, out, strict=True))

    def _balance_chunk(self, chunk: tuple[int, int, int, int], objs: list) -> None:
        """Crafter's spawning and despawning, with distances to the nearest living player
        (cows only with ``mobs=False``, as in DAMCS's peaceful world)."""
        light = self.world.daylight
        if self.mobs:
            self._balance_object(
                chunk, objs, self._objects.Zombie, "grass", 6, 0, 0.3, 0.4, self._zombie,
                lambda num, space: (0 if space < 50 else 3.5 - 3 * light, 3.5 - 3 * light))
            self._balance_object(
                chunk, objs, self._objects.Skeleton, "path", 7, 7, 0.1, 0.1, self._skeleton,
                lambda num, space: (0 if space < 6 else 1, 2))
        self._balance_object(
            chunk, objs, self._objects.Cow, "grass", 5, 5, 0.01, 0.1,
            functools.partial(self._objects.Cow, self.world),
            lambda num, space: (0 if space < 30 else 1, 1.5 + light))

    def _zombie(self, pos: np.ndarray) -> Any:
        zombie = self._objects.Zombie(self.world, pos, None)
        zombie.player = NearestPlayer(self.players, zombie)
        return zombie

    def _skeleton(self, pos: np.ndarray) -> Any:
        skeleton = self._objects.Skeleton(self.world, pos, None)
        skeleton.player = NearestPlayer(self.players, skeleton)
        return skeleton

    def _distance(self, pos: np.ndarray) -> float:
        """To the nearest player still in the world (one who died this step counts until the
        step ends, as crafter.Env keeps measuring from its dead player)."""
        present = [p for p in self.players if not p.removed]
        return min((p.distance(pos) for p in present), default=float("inf"))

    def _balance_object(self, chunk: tuple[int, int, int, int], objs: list, cls: type,
                        material: str, spawn_dist: int, despawn_dist: int, spawn_prob: float,
                        despawn_prob: float, ctor: Any, target_fn: Any) -> None:
        xmin, xmax, ymin, ymax = chunk
        random = self.world.random
        creatures = [obj for obj in objs if isinstance(obj, cls)]
        mask = self.world.mask(*chunk, material)
        target_min, target_max = target_fn(len(creatures), mask.sum())
        if len(creatures) < int(target_min) and random.uniform() < spawn_prob:
            xs = np.tile(np.arange(xmin, xmax)[:, None], [1, ymax - ymin])
            ys = np.tile(np.arange(ymin, ymax)[None, :], [xmax - xmin, 1])
            xs, ys = xs[mask], ys[mask]
            i = random.randint(0, len(xs))
            pos = np.array((xs[i], ys[i]))
            if self.world[pos][1] is None and self._distance(pos) >= spawn_dist:
                self.world.add(ctor(pos))
        elif len(creatures) > int(target_max) and random.uniform() < despawn_prob:
            obj = creatures[random.randint(0, len(creatures))]
            if self._distance(obj.pos) >= despawn_dist:
                self.world.remove(obj)

    def _update_time(self) -> None:
        progress = (self._step / 300) % 1 + 0.3  # Crafter's day: 300 steps
        self.world.daylight = 1 - np.abs(np.cos(np.pi * progress)) ** 3

    # --- what the players see ---------------------------------------------------------------
    def _observations(self, alive: list[bool]) -> dict[str, Any]:
        """Each player's view; zeros for a player that was dead before this step (the step a
        player dies in shows what it saw)."""
        out: dict[str, Any] = {}
        for agent, player, was_alive in zip(self.possible_agents, self.players, alive,
                                            strict=True):
            if not was_alive:
                out[agent] = ("You are dead." if self.obs_type == "text"
                              else np.zeros(self._obs_space.shape, self._obs_space.dtype))
            elif self.obs_type == "rgb":
                out[agent] = self._view(player)
            elif self.obs_type == "text":
                out[agent] = describe(self.world, player, self.players, self._last_actions,
                                      (VIEW[0], VIEW[1] - 2))
            else:
                out[agent] = symbolic_view(self.world, player, (VIEW[0], VIEW[1] - 2),
                                           self._constants)
        return out

    def _view(self, player: Any) -> np.ndarray:
        """The player's egocentric picture, drawn as ``crafter.Env.render`` draws it."""
        size, view = np.array((self.size, self.size)), np.array(VIEW)
        unit = size // view
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        local = self._local(player, unit)
        items = self._items(player.inventory, unit)
        picture = np.concatenate([local, items], 1)
        border = (size - unit * view) // 2
        (x, y), (w, h) = border, picture.shape[:2]
        canvas[x: x + w, y: y + h] = picture
        return canvas.transpose((1, 0, 2))

    def episode_figures(self) -> dict[str, float]:
        """What the episode achieved, for Crafter's score: ``success_<achievement>``, the share
        of players who unlocked it, and ``team_success_<achievement>``, 1 when any did."""
        out = {}
        for name in ACHIEVEMENTS:
            share = sum(name in unlocked for unlocked in self._unlocked) / self.n_players
            out[f"success_{name}"] = share
            out[f"team_success_{name}"] = float(share > 0)
        return out

    def _infos(self, obs: dict[str, np.ndarray], dead: list[bool]) -> dict[str, dict]:
        team = set().union(*self._unlocked) if self._unlocked else set()
        infos = {}
        for i, (agent, player) in enumerate(zip(self.possible_agents, self.players,
                                                strict=True)):
            mask = np.zeros(len(ACTIONS), np.int8)
            if dead[i]:
                mask[0] = 1
            elif self.avail_all:
                mask[:] = 1
            else:
                mask[:] = available(self.world, player, self.players, self._constants)
            infos[agent] = {
                "action_mask": mask, "dead": dead[i],
                "achievements": sorted(self._unlocked[i]), "team_achievements": sorted(team),
                "inventory": dict(player.inventory), "position": tuple(int(v) for v in player.pos),
            }
        return infos

    def state(self) -> np.ndarray:
        """Every player's symbolic view, then each player's position (x, y over the world's
        size) and whether it lives."""
        parts = []
        area = np.array(self.world.area, np.float32)
        for player in self.players:
            alive = player.health > 0
            parts.append(symbolic_view(self.world, player, (VIEW[0], VIEW[1] - 2),
                                       self._constants) if alive
                         else np.zeros(self._symbolic_size(), np.float32))
        for player in self.players:
            parts.append(np.array([*(np.array(player.pos) / (area - 1)),
                                   float(player.health > 0)], np.float32))
        return np.concatenate(parts).astype(np.float32)

    def render(self) -> np.ndarray | None:
        """The whole world, with every player, at 8 pixels a cell."""
        if self.render_mode is None:
            return None
        area = np.array(self.world.area)
        whole = self._engine.LocalView(QuietWorld(self.world), self._textures, list(area))
        centre = type("Centre", (), {"pos": area // 2, "sleeping": False})()
        return whole(centre, np.array((8, 8))).transpose((1, 0, 2)).astype(np.uint8)

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["ACHIEVEMENTS", "ACTIONS", "GIVE_ITEMS", "MultiCrafter"]
