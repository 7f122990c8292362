"""Multi-agent Crafter: ``crafter:<N>p`` and ``crafter:mac-<N>p``, N players (1–8) in one world
of the ``crafter`` engine.

Needs the ``crafter`` package (extra ``crafter``). The world, its generation, every object and
its rules, and the textures are the package's; :class:`~marl.envs.crafter.env.MultiCrafter`
adds what several players need, as a PettingZoo ``ParallelEnv``; ``make`` batches it through
the generic adapter (``workers="subprocess"`` spreads the copies over processes).

- **Ids**: ``crafter:2p`` … ``crafter:8p`` (and ``crafter:1p``), Crafter's rules;
  ``crafter:mac-<N>p``, DAMCS's MAC rules: a peaceful world (``mobs=False``: no zombies or
  skeletons, cows as in Crafter), MAC's shaped reward (``reward="mac"``), and the episode ends
  for the team when any player holds a diamond (``diamond_ends=True``). Keywords:
  ``obs_type`` (``rgb`` | ``symbolic`` | ``text``), ``reward`` (``player`` | ``team`` |
  ``mac``), ``length`` (10,000), ``mobs``, ``diamond_ends``, ``size`` (64: pixels of the rgb
  view), ``area`` (64: cells of the world), ``avail_all`` (False), ``seed``.
- **World**: players start in a row at the world's centre, ``(cx + i − N//2, cy)``; the world
  is generated around the middle one (Crafter's grass start area and mob-free radius). Each
  zombie and skeleton hunts the **nearest living player** (Manhattan distance, as the engine
  measures; ties to the lower index), re-chosen whenever it looks; spawning and despawning
  (every 10 steps, Crafter's rule) measure distances to the nearest living player.
- **A step**: every player's action is set, then the players update in an order drawn per step
  from the env's own generator (so nobody wins every race for a cell), then every other object
  (taken before the players act, in the world's order) within ``2 · max(view)`` = 18 cells of
  a player who was alive at the start of the step updates once. With one player this is
  ``crafter.Env.step`` exactly (tested step for step over 5,000 steps).
- **Actions** (23):

  ====  ===================  ====  ====================
  0     noop                 12    make_stone_pickaxe
  1-4   move_left/right/up/  13    make_iron_pickaxe
        down                 14    make_wood_sword
  5     do                   15    make_stone_sword
  6     sleep                16    make_iron_sword
  7-10  place_stone/table/   17    give_wood
        furnace/plant        18    give_stone
  11    make_wood_pickaxe    19    give_coal
                             20    give_iron
                             21    give_diamond
                             22    give_sapling
  ====  ===================  ====  ====================

  ``give_<item>`` hands one unit to the living player one faces, in the giver's turn; nothing
  happens when nobody is there, the giver has none, or the receiver holds 9 (the maximum).
- **Mask** (``infos[agent]["action_mask"]``): placing and making are unavailable when the
  engine would refuse them (inventory, the cell faced, a table or furnace within 1 cell), giving
  when it would do nothing; the rest is always available. ``avail_all=True``: all available.
- **Observations**: ``rgb``, each player's 64×64×3 view drawn by the engine's renderer
  (9×7 cells and the inventory strip; other players visible); ``symbolic``, the local 9×7
  cells as one-hot materials and objects, then inventory and vitals over 9, facing, daylight
  and sleeping (1,156 floats); ``text`` (``parallel_env`` only: strings), a short
  deterministic description for language models (vitals, inventory, daylight, the nearest cell
  of each material and every creature and player in view with its offset, teammates with
  their health and last action). ``state()``: every player's symbolic view, then each
  player's position and whether it lives. At night the rgb views draw their noise from the world's
  generator, as Crafter does, so rgb and symbolic runs of one seed part ways after dusk.
- **Rewards**: Crafter's, per player: +1 for each achievement unlocked the first time in the
  episode and ±0.1 per health point; ``reward="team"`` gives every player their sum;
  ``reward="mac"``, DAMCS's: +3 for a move, +1 for any other action but noop, 10 × the
  achievement's difficulty (DAMCS's table, :data:`~marl.envs.crafter.rules.MAC_DIFFICULTY`)
  when the team unlocks it first, 10 × the item's value per unit of wood (5), stone (20), coal
  (20), iron (50) or diamond (100) gained — counted at the step it happens (DAMCS's code
  counts it one step later).
- **Episode end**: when every player is dead (termination) or after ``length`` steps
  (truncation). A dead player leaves the world and ``agents``; through the adapter its slot
  shows zeros with only noop available. ``infos[agent]``: ``achievements`` (unlocked this
  episode), ``team_achievements``, ``dead``, ``inventory``, ``position``; at the step an
  episode ends, ``episode``: ``success_<achievement>`` (the share of players who unlocked it)
  and ``team_success_<achievement>`` (any did). Through the trainers these become the
  success rates under ``train/`` and ``test/`` in TensorBoard, with Crafter's ``score`` and
  ``team_score`` (the geometric mean of the 22 rates in %, with a 1% offset).

Versions
--------
- v1: the rules above, on ``crafter`` 1.8.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import torch

from marl.envs.adapter import ParallelVecEnv
from marl.envs.crafter.env import MultiCrafter
from marl.envs.crafter.rules import ACHIEVEMENTS, crafter_score
from marl.envs.registry import EnvFamily, check_kwargs, register_family, unknown_id
from marl.logger import register_tags

_ID = re.compile(r"^(mac-)?(\d)p$")
# DAMCS's MAC: a peaceful world, its shaped reward, and a diamond ends the episode
MAC = {"mobs": False, "reward": "mac", "diamond_ends": True}


def _parse(name: str, kwargs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Players and keywords (the id's rules under the caller's) of ``crafter:<name>``."""
    match = _ID.match(name)
    if match is None or not 1 <= int(match.group(2)) <= 8:
        raise unknown_id(f"crafter:{name}",
                         "crafter ids are crafter:1p … crafter:8p and crafter:mac-1p … mac-8p")
    check_kwargs(f"crafter:{name}", MultiCrafter, kwargs, reserved=("players",))
    return int(match.group(2)), {**(MAC if match.group(1) else {}), **kwargs}


def parallel_env(name: str, **kwargs: Any) -> MultiCrafter:
    """``crafter:<name>`` as a PettingZoo ``ParallelEnv``."""
    players, kwargs = _parse(name, kwargs)
    return MultiCrafter(players, **kwargs)


def make(name: str, num_envs: int = 1, device: str | torch.device = "cpu", *,
         workers: str = "inprocess", num_workers: int | None = None, validate: bool = True,
         **kwargs: Any) -> ParallelVecEnv:
    """``crafter:<name>`` as a batched environment over ``num_envs`` worlds; ``render(i)``
    draws copy ``i``'s whole world (only when asked)."""
    players, kwargs = _parse(name, {"render_mode": "rgb_array", **kwargs})
    if kwargs.get("obs_type") == "text":
        raise ValueError(f"crafter:{name}: obs_type='text' gives strings, which a batched "
                         "(tensor) environment cannot hold; use marl.envs.parallel_env")
    return ParallelVecEnv(functools.partial(MultiCrafter, players, **kwargs), num_envs, device,
                          workers=workers, num_workers=num_workers, validate=validate,
                          episode_figures=crafter_score)


def catalogue() -> Iterator[str]:
    for n in range(1, 9):
        yield f"{n}p"
    for n in range(1, 9):
        yield f"mac-{n}p"


for _group, _when in (("train", "training episodes"), ("test", "greedy test episodes")):
    register_tags({
        **{f"{_group}/success_{a}": f"share of players who unlocked {a}, over the {_when}"
           for a in ACHIEVEMENTS},
        **{f"{_group}/team_success_{a}": f"share of {_when} in which some player unlocked {a}"
           for a in ACHIEVEMENTS},
        f"{_group}/score": f"Crafter score over players' success rates in the {_when} (%)",
        f"{_group}/team_score": f"Crafter score over the team's success rates in the {_when} "
                                "(%)",
    })

register_family(EnvFamily(
    prefix="crafter",
    summary="multi-agent Crafter: N players in one world of the crafter engine",
    pattern="crafter:[mac-]<N>p",
    make=make,
    version=1,  # the card's Versions
    catalogue=catalogue,
    parallel_env=parallel_env,
))
