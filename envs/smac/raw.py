"""Translation between StarCraft II's raw interface and the simulator's battles.

:class:`RawBattle` reads one SMAC battle off the game's raw units (``raw_pb2.Unit`` messages,
or anything with the same fields) into a one-copy :class:`~marl.envs.smac.env.SMACState`,
so that the simulator's own :meth:`~marl.envs.smac.env.SMACEnv.observe` and
:meth:`~marl.envs.smac.env.SMACEnv.outcome` give the observations, state, available actions
and rewards; and it turns the agents' actions into raw unit commands.

As in SMAC:

- allies are the player's units (owner 1), enemies the built-in AI's (owner 2); the agents are
  the allies sorted by (unit type, x, y) when the episode starts, the enemies keep the order
  the game lists them in; a unit missing from the observation is dead;
- allied units have the SMAC map's own type ids: the smallest is the map's first type, the
  others follow in the map's type order (Marauder, Marine, Medivac on ``MMM``); enemies have
  SC2's standard ids (:data:`SC2_UNIT_TYPES`);
- actions: stop (ability 4), move 2 north/south/east/west (16, to a point), attack enemy
  ``j`` (23) or, for a Medivac, heal ally ``j`` (386), never queued; no-op sends nothing.

Unlike SMAC, the type one-hot is the same for both sides (SMAC's enemy order differs on some
maps; the simulator does not copy that quirk, and the bridge gives the simulator's layout so
that a policy trained on one runs on the other).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from marl.envs.smac.env import NONE, SMACEnv, SMACState
from marl.envs.smac.maps import N_BASE_ACTIONS, SMACMap

SC2_UNIT_TYPES = {"colossus": 4, "baneling": 9, "marine": 48, "marauder": 51, "medivac": 54,
                  "zealot": 73, "stalker": 74, "spine_crawler": 98, "zergling": 105,
                  "hydralisk": 107}
STOP, MOVE, ATTACK, HEAL = 4, 16, 23, 386  # raw ability ids
PLAYER, BOT = 1, 2  # owners


@dataclass(frozen=True)
class RawCommand:
    """One raw unit command: ``ability`` by unit ``unit`` on a unit or a point (or neither)."""

    ability: int
    unit: int  # tag
    target_unit: int | None = None
    target_point: tuple[float, float] | None = None


def pathing_grid(image: Any) -> torch.Tensor:
    """The game's pathing grid (``ImageData``: ``bits_per_pixel``, ``size``, ``data``) as
    ``walkable [X, Y]``. One bit per cell is packed most significant bit first, rows of
    ``size.x`` cells from y = 0 up; 8-bit grids are stored top row first with 0 = walkable
    (as SMAC reads them)."""
    w, h = image.size.x, image.size.y
    raw = np.frombuffer(bytes(image.data), dtype=np.uint8)
    if image.bits_per_pixel == 1:
        grid = np.unpackbits(raw)[: w * h].reshape(h, w).T.astype(bool)
    elif image.bits_per_pixel == 8:
        grid = (raw[: w * h].reshape(h, w)[::-1].T == 0)
    else:
        raise ValueError(f"pathing grid with {image.bits_per_pixel} bits per pixel")
    return torch.from_numpy(np.ascontiguousarray(grid))


class RawBattle:
    """Reads the battle of ``sim``'s map off raw units and writes the agents' commands.

    ``sim`` is a one-copy :class:`SMACEnv` of the same map: it holds the layout, the unit
    statistics and the rules of the observation and reward."""

    def __init__(self, sim: SMACEnv) -> None:
        if not isinstance(sim.scenario, SMACMap):
            raise ValueError("the StarCraft II bridge plays the fixed SMAC maps, not "
                             f"generated scenarios ({sim.scenario.name})")
        self.sim = sim
        self.scenario = m = sim.scenario
        self.slot_names = [t.name for t in m.ally_units + m.enemy_units]
        self.kinds = torch.tensor(m.slot_kinds)
        self.tags: list[int] = []  # the unit in each slot, allies first

    def set_terrain(self, game_info: Any) -> None:
        """The map's pathing grid and playable area from ``ResponseGameInfo``."""
        raw = game_info.start_raw
        area = raw.playable_area
        self.sim.set_terrain(pathing_grid(raw.pathing_grid),
                             (area.p1.x - area.p0.x, area.p1.y - area.p0.y))

    def begin(self, units: Any) -> SMACState:
        """Assign the slots at the start of an episode; raises if the units on the field are
        not the map's."""
        m = self.scenario
        allies = sorted((u for u in units if u.owner == PLAYER),
                        key=lambda u: (u.unit_type, u.pos.x, u.pos.y))
        enemies = [u for u in units if u.owner == BOT]
        if len(allies) != m.n_agents or len(enemies) != m.n_enemies:
            raise ValueError(f"{m.name}: {len(allies)} allied and {len(enemies)} enemy units on "
                             f"the field, the map has {m.n_agents} and {m.n_enemies}")
        first = min(u.unit_type for u in allies)
        order = m.types or (m.ally_units[0].name,)
        ally_names = [order[u.unit_type - first] if u.unit_type - first < len(order)
                      else f"custom type {u.unit_type}" for u in allies]
        by_id = {v: k for k, v in SC2_UNIT_TYPES.items()}
        enemy_names = [by_id.get(u.unit_type, f"type {u.unit_type}") for u in enemies]
        # enemies by type in the map's order (the simulator's slots), the game's order within
        listed = list(dict.fromkeys(t.name for t in m.enemy_units))
        rank = [listed.index(k) if k in listed else len(listed) for k in enemy_names]
        enemies = [enemies[i] for i in sorted(range(len(enemies)), key=rank.__getitem__)]
        enemy_names = [enemy_names[i] for i in sorted(range(len(rank)), key=rank.__getitem__)]
        if ally_names + enemy_names != self.slot_names:
            raise ValueError(f"{m.name}: the units on the field ({ally_names} against "
                             f"{enemy_names}) are not the map's ({self.slot_names})")
        self.tags = [u.tag for u in allies] + [u.tag for u in enemies]
        empty = torch.zeros(1, len(self.tags))
        blank = SMACState(
            pos=torch.zeros(1, len(self.tags), 2), health=empty, shield=empty,
            cooldown=empty, energy=empty, quiet=empty,
            order=torch.full((1, len(self.tags)), NONE), target=torch.zeros_like(self.kinds)[None],
            dest=torch.zeros(1, len(self.tags), 2),
            last_action=torch.full((1, m.n_agents), -1), t=torch.zeros(1, dtype=torch.long),
            kind=self.kinds[None].clone())
        return self.read(units, blank, None)

    def read(self, units: Any, previous: SMACState, actions: torch.Tensor | None) -> SMACState:
        """The state after ``actions [N]`` (None at the start) from the units now on the
        field; dead units keep their last position."""
        dev = self.sim.device
        where = {u.tag: u for u in units}
        pos = previous.pos.clone()
        values = torch.zeros(4, len(self.tags))  # health, shield, cooldown, energy
        for i, tag in enumerate(self.tags):
            u = where.get(tag)
            if u is not None and u.health > 0:
                pos[0, i, 0], pos[0, i, 1] = u.pos.x, u.pos.y
                values[:, i] = torch.tensor([u.health, u.shield, u.weapon_cooldown, u.energy])
        health, shield, cooldown, energy = (v[None] for v in values)
        last = previous.last_action if actions is None else actions.reshape(1, -1).cpu()
        t = previous.t + (0 if actions is None else 1)
        state = SMACState(pos=pos, health=health, shield=shield, cooldown=cooldown,
                          energy=energy, quiet=previous.quiet, order=previous.order,
                          target=previous.target, dest=previous.dest, last_action=last.clone(),
                          t=t.clone(), kind=self.kinds[None].clone())
        return SMACState(**{f: v.to(dev) for f, v in vars(state).items()})

    def commands(self, actions: torch.Tensor, state: SMACState) -> list[RawCommand]:
        """Raw commands for ``actions [N]`` of the agents in ``state``."""
        n = self.scenario.n_agents
        healer = self.sim.table.healer[self.kinds[:n]].tolist()
        moves = ((0.0, 2.0), (0.0, -2.0), (2.0, 0.0), (-2.0, 0.0))  # north, south, east, west
        out = []
        for i, a in enumerate(actions.tolist()):
            tag = self.tags[i]
            if a == 0:
                continue
            if a == 1:
                out.append(RawCommand(STOP, tag))
            elif a < N_BASE_ACTIONS:
                dx, dy = moves[a - 2]
                x, y = state.pos[0, i].tolist()
                out.append(RawCommand(MOVE, tag, target_point=(x + dx, y + dy)))
            elif healer[i]:
                out.append(RawCommand(HEAL, tag, target_unit=self.tags[a - N_BASE_ACTIONS]))
            else:
                out.append(RawCommand(ATTACK, tag, target_unit=self.tags[n + a - N_BASE_ACTIONS]))
        return out
