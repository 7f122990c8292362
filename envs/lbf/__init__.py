"""Level-Based Foraging (LBF), native and batched: ``lbf:<id>``.

Card
----
- **Ids**: ``lbf:[grid-][Ks-]RxC-Np-Ff[-coop]``, mirroring ``lbforaging``'s gymnasium ids
  (``Foraging[-grid][-Ks]-RxC-Np-Ff[-coop]-v3``): an R×C field (any size ≥ 3), N players, up to
  F food items, sight K (full sight when omitted), ``-coop`` for forced cooperation, ``grid-`` for
  the grid observation. Examples: ``lbf:8x8-2p-3f``, ``lbf:8x8-2p-3f-coop``,
  ``lbf:2s-10x10-3p-3f``, ``lbf:grid-2s-8x8-2p-2f``.
- **Agents**: ``agent_0`` … ``agent_{N-1}``.
- **Actions** (6): NONE, NORTH (row − 1), SOUTH (row + 1), WEST (col − 1), EAST (col + 1), LOAD.
- **Observation** ``[B, N, 3F + 3N]`` float32, exactly lbforaging's vector: the (row, col, level)
  of each food in the agent's window in row-major order, then (row, col, level) of the players
  it sees, itself first, others in index order; what is not seen is (−1, −1, 0). Coordinates are
  relative to the window's top-left corner clipped at the border (absolute with full sight).
  With ``observe_agent_levels=False`` players are (row, col) pairs: ``3F + 2N``.
  Grid observation ``[B, N, 3, 2K+1, 2K+1]``: agent levels, food levels, free cells (1 = free;
  outside the field, walls, players and food are 0), centred on the agent. The vector
  observation and the state do not show walls (lbforaging has none).
- **State** ``[B, 3F + 3N]``: every remaining food (row, col, level), row-major, padded with
  (−1, −1, 0), then every player (row, col, level) in index order; absolute coordinates.
- **Available actions**: lbforaging's validity rule from the current positions: NONE always;
  a move when the target cell is on the field, not a wall and holds no food (players do not
  block: walking into a cell whose occupant stays put simply fails); LOAD when food is next to
  the agent.
- **Reward** ``[B, N]``: when the loading players next to a food have levels summing to at
  least its level, each gets ``level · food_level / (Σ levels · food spawned)`` (so one
  episode's team total is at most 1); ``penalty`` is subtracted from each member of a failed
  team (0 by default).
- **Episode end**: ``terminated`` when no food is left; ``truncated`` when ``max_episode_steps``
  (50) steps pass with food left. lbforaging reports both as ``done`` (and ``truncated`` always
  False); here the time limit is a truncation, so learners bootstrap through it.
- **Arguments** (as ``lbforaging.ForagingEnv``): ``min_player_level=1``, ``max_player_level=2``,
  ``min_food_level=1``, ``max_food_level=None`` (cap = sum of the three lowest player levels),
  ``max_episode_steps=50``, ``normalize_reward=True``, ``observe_agent_levels=True``,
  ``penalty=0.0``; plus ``walls=()``, ``max_walls=None``, ``validate=True`` and ``seed``.
  Levels are scalars (lbforaging also takes per-player / per-food lists).

Walls
-----
``walls``: a sequence of (row, col) cells (e.g. ``[[0, 3], [1, 3]]`` in YAML), the same in every
copy. Nobody enters a wall (a move into one is unavailable; with ``validate=False`` it acts as
NONE), nothing spawns on one. The free cells must form one 4-connected region (make enclosed
cells walls too) with more free cells off the border than there are players, else
``ValueError``; spawning is lbforaging's on the free cells (food off the border, off players,
apart), so every food has a free neighbour that the players can reach — though food may block
a one-cell corridor, and nothing checks that a food's free neighbours can hold the team its
level needs (tasks check both). The state keeps each copy's walls (``LBFState.walls [B, R, C]``,
0/1), so copies playing tasks have their own; ``render`` draws them.

Tasks
-----
``env.task_space`` is an :class:`~marl.envs.lbf.tasks.LBFTaskSpace` for the id's field, players
and food, with up to ``max_walls`` walls (default: a quarter of the cells, 42 on 13×13):
layouts (:class:`~marl.envs.lbf.tasks.LBFLayout`: walls, player starts and levels, food and
levels) as ``max_walls + N + F`` tokens; its module says what the tokens mean, which layouts
are legal (every food reachable and loadable by the players that fit around it) and how any
tokens are repaired into one. ``env.set_tasks(tokens [B, L])`` (or ``ids=`` and fewer rows):
copy ``i`` plays layout ``tokens[i]`` from its next reset, autoresets included, until given
another; ``set_tasks(None)`` goes back to random layouts. A task replaces the fixed walls and
the drawn levels (``force_coop`` and the level arguments shape random layouts only); the
environment's ``state_dict`` keeps the tasks. ``LBFOne`` takes one row. Held-out layouts are
text maps under ``heldout/``, read by ``heldout_tasks("lbf:13x13-2p-3f")`` (seven named
layouts for 13×13, 2 players, 3 food: an open field, two rooms joined by a door, a zigzag
corridor, a level-3 food behind a one-cell gap, players in opposite corners, a spiral,
pillars).

Differences from lbforaging
---------------------------
- Unavailable actions: with ``validate=True`` (the default) ``step`` raises ``ValueError``; with
  ``validate=False`` (and in the PettingZoo face) they become NONE, as in lbforaging.
- Spawning draws players uniformly over distinct cells and each food uniformly over the cells
  its rules allow, which is the distribution of lbforaging's rejection sampling, except that
  lbforaging also keeps a player off the cells where *later* players stood at the end of the
  previous episode, and gives up after 1,000 tries in all (both rarely matter; a statistical
  test compares the two).

One copy and the PettingZoo face
--------------------------------
``parallel_env("lbf:…")``, and ``make("lbf:…")`` with one copy on the CPU, step
:class:`~marl.envs.lbf.one.LBFOne`: the same rules on Python integers for one copy (tested in
lockstep with ``LBFEnv``: a seed gives the same episodes), several times faster there than
tensor code and faster than ``lbforaging`` (``scripts/bench_face.py``). A run with
``--num-envs 1`` steps it too; its ``compile()`` leaves it as it is.

Versions
--------
- v1: lbforaging 2.0.0 rules. Walls and tasks came later within v1: they add to it, and
  without them every step is what it was. Spawning later drew from the same distribution
  with fewer random numbers (one per player and food, not one per cell), so a seed's
  layouts differ from those of earlier code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import torch

from marl.devices import parse_device
from marl.envs.lbf.env import ACTION_NAMES, LBFEnv, LBFState
from marl.envs.lbf.tasks import LBFLayout, LBFTaskSpace, heldout_tasks
from marl.envs.registry import EnvFamily, check_kwargs, register_family, unknown_id

__all__ = ["ACTION_NAMES", "LBFEnv", "LBFLayout", "LBFState", "LBFTaskSpace", "heldout_tasks",
           "parse_id"]

_ID = re.compile(
    r"(?P<grid>grid-)?(?:(?P<sight>\d+)s-)?(?P<rows>\d+)x(?P<cols>\d+)-(?P<players>\d+)p-"
    r"(?P<food>\d+)f(?P<coop>-coop)?"
)


def parse_id(name: str) -> dict[str, Any]:
    """The ``LBFEnv`` arguments an id (without ``lbf:``) fixes."""
    m = _ID.fullmatch(name)
    if m is None:
        raise unknown_id(f"lbf:{name}", "LBF ids look like lbf:[grid-][Ks-]RxC-Np-Ff[-coop]")
    rows, cols = int(m["rows"]), int(m["cols"])
    return {
        "players": int(m["players"]),
        "field_size": (rows, cols),
        "max_num_food": int(m["food"]),
        "sight": int(m["sight"]) if m["sight"] else max(rows, cols),
        "force_coop": bool(m["coop"]),
        "grid_observation": bool(m["grid"]),
    }


def _arguments(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``LBFEnv`` arguments of ``lbf:<name>`` with ``kwargs``, which may not change what
    the id fixes."""
    fixed = parse_id(name)
    for key in kwargs:
        if key in fixed:
            raise TypeError(f"'{key}' is set by the id 'lbf:{name}'; change the id instead")
    check_kwargs(f"lbf:{name}", LBFEnv, kwargs, reserved=("num_envs", "device"))
    return {**fixed, **kwargs}


def make(name: str, num_envs: int = 1, device: str | torch.device = "cpu", **kwargs: Any) -> LBFEnv:
    """``lbf:<name>`` as a batched environment: one copy on the CPU is an
    :class:`~marl.envs.lbf.one.LBFOne` (the same episodes, stepped on Python integers, 5–6×
    faster there), anything else an :class:`LBFEnv`."""
    arguments = _arguments(name, kwargs)
    if type(num_envs) is int and num_envs == 1 and parse_device(device).type == "cpu":
        from marl.envs.lbf.one import LBFOne

        return LBFOne(**arguments)
    return LBFEnv(num_envs, device, **arguments)


def parallel_env(name: str, render_mode: str | None = None, **kwargs: Any) -> Any:
    """``lbf:<name>`` as a PettingZoo ``ParallelEnv`` over :class:`~marl.envs.lbf.one.LBFOne`
    (LBF's rules on Python integers: at one copy, several times faster than tensor code)."""
    from marl.envs.lbf.one import LBFOne
    from marl.envs.pettingzoo_face import PettingZooEnv

    env = LBFOne(**_arguments(name, kwargs))
    return PettingZooEnv(env, f"lbf:{name}", render_mode=render_mode)


def catalogue() -> Iterator[str]:
    """The ids lbforaging registers, in our spelling (any other size parses as well)."""
    for s in range(5, 20):
        for p in range(2, 10):
            for f in range(1, 10):
                for coop in ("", "-coop"):
                    yield f"{s}x{s}-{p}p-{f}f{coop}"
                    yield f"2s-{s}x{s}-{p}p-{f}f{coop}"


register_family(
    EnvFamily(
        prefix="lbf",
        summary="Level-Based Foraging, native batched torch (lbforaging 2.0.0 rules)",
        pattern="lbf:[grid-][Ks-]RxC-Np-Ff[-coop]",
        make=make,
        version=1,  # the card's Versions
        catalogue=catalogue,
        parallel_env=parallel_env,
    )
)
