"""Standing orders of StarCraft units, carried out through SMAC's action ids.

A language model commands a unit once per decision, but the battle advances in environment
steps of 8 game loops, several per decision. As in the game, an order stands until it is done
or replaced: each unit holds a current order and a queue (a team's second and third actions).
Every environment step, :meth:`OrderBook.actions` turns each unit's current order into one of
SMAC's actions:

- **stop**: SMAC's stop (hold position); a unit with nothing to do stops.
- **move** to a point: the cardinal move (north/south/east/west, 2 units) that best closes the
  distance, among the available ones; done within :data:`REACHED` of the point on both axes,
  or when no available move gets closer (a wall, the map's edge).
- **attack** an enemy (**heal** an ally, for a Medivac): SMAC's attack (heal) action on the
  target when it is available (within range), otherwise a move towards the target, as a unit
  in the game walks into range; done when the target is dead.

A finished order gives way to the next one in the queue, the same step. Dead units no-op.
The same heuristic acting on action ids directly (:func:`focus_fire_orders`) uses this book,
so that comparing it with the text policy measures the text layer alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from marl.envs.smac.maps import N_BASE_ACTIONS, SHOOT

NOOP, STOP = 0, 1
MOVES = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])  # actions 2..5: N S E W
REACHED = 1.0  # a move is done within this distance of its point on both axes


@dataclass(frozen=True)
class Order:
    """One order: ``kind`` is ``stop``, ``move`` (to ``point``, map coordinates) or ``attack``
    / ``heal`` (the unit in slot ``target``: an enemy slot, or an ally slot for a heal)."""

    kind: str
    point: tuple[float, float] | None = None
    target: int | None = None


@dataclass
class UnitOrders:
    current: Order | None = None
    queue: list[Order] = field(default_factory=list)


class OrderBook:
    """The standing orders of ``n_agents`` allied units in each of ``battles`` battles."""

    def __init__(self, battles: int, n_agents: int) -> None:
        self.n_agents = n_agents
        self.units = [[UnitOrders() for _ in range(n_agents)] for _ in range(battles)]

    def clear(self, battle: int) -> None:
        self.units[battle] = [UnitOrders() for _ in range(self.n_agents)]

    def give(self, battle: int, unit: int, orders: list[Order]) -> None:
        """Replace the unit's orders: the first now, the rest queued."""
        self.units[battle][unit] = UnitOrders(orders[0], list(orders[1:]))

    def current(self, battle: int, unit: int) -> list[Order]:
        held = self.units[battle][unit]
        return ([held.current] if held.current is not None else []) + held.queue

    def actions(self, pos: np.ndarray, alive: np.ndarray, avail: np.ndarray) -> torch.Tensor:
        """SMAC actions ``[B, N]`` for this step, from positions ``pos [B, U, 2]``, ``alive
        [B, U]`` and the available actions ``avail [B, N, A]`` (numpy); finished orders are
        replaced by the next queued ones on the way."""
        n_agents = self.n_agents
        out = np.full((len(self.units), n_agents), NOOP, dtype=np.int64)
        for b, units in enumerate(self.units):
            for i, held in enumerate(units):
                if not alive[b, i]:
                    continue
                while True:
                    action = _carry_out(held.current, pos[b], alive[b], avail[b, i], i, n_agents)
                    if action is not None or held.current is None:
                        break
                    held.current = held.queue.pop(0) if held.queue else None
                out[b, i] = STOP if action is None else action
        return torch.from_numpy(out)


def _carry_out(order: Order | None, pos: np.ndarray, alive: np.ndarray, avail: np.ndarray,
               me: int, n_agents: int) -> int | None:
    """The action that carries out ``order`` now, or None when it is done (or absent)."""
    if order is None or order.kind == "stop":
        return STOP if order is not None else None
    if order.kind == "move":
        assert order.point is not None
        return _move_towards(pos[me], np.asarray(order.point), avail, reach=REACHED)
    assert order.target is not None
    if not alive[order.target]:
        return None
    # the target's action: attack enemy j (slot n + j), or heal ally j (slot j)
    action = N_BASE_ACTIONS + order.target - (n_agents if order.kind == "attack" else 0)
    if avail[action]:
        return action
    return _move_towards(pos[me], pos[order.target], avail, reach=0.0) or STOP


def _move_towards(at: np.ndarray, goal: np.ndarray, avail: np.ndarray, reach: float) -> int | None:
    """The available cardinal move that best closes the distance to ``goal``; None when
    within ``reach`` on both axes or no available move gets closer."""
    delta = goal - at
    if np.abs(delta).max() <= reach:
        return None
    progress = MOVES @ delta
    best, gain = None, 0.0
    for k in range(4):
        if avail[2 + k] and progress[k] > gain + 1e-9:
            best, gain = 2 + k, progress[k]
    return best


def focus_fire_orders(pos: np.ndarray, alive: np.ndarray, hit_points: np.ndarray,
                      health_fraction: np.ndarray, sight: np.ndarray, healer: np.ndarray,
                      n_agents: int) -> list[list[Order]]:
    """The focus-fire heuristic as orders, for one battle: every unit attacks, among the
    visible enemies (within its sight) within attack range (``SHOOT``), the one with the
    fewest hit points (health + shields; ties: the nearer, then the lower slot), else the
    nearest visible enemy, and holds when it sees none; a Medivac heals the visible non-Medivac
    ally with the lowest ``health_fraction`` (ties: the nearer), or holds when it sees none.
    Arrays are one battle's: ``[U]`` per unit (allies first), ``sight [N]``."""
    u = pos.shape[0]
    orders: list[list[Order]] = []
    for i in range(n_agents):
        if not alive[i]:
            orders.append([])
            continue
        dist = np.linalg.norm(pos - pos[i], axis=-1)
        if healer[i]:
            friends = [j for j in range(n_agents)
                       if j != i and alive[j] and not healer[j] and dist[j] < sight[i]]
            if not friends:
                orders.append([Order("stop")])
                continue
            pick = min(friends, key=lambda j: (health_fraction[j], dist[j], j))
            orders.append([Order("heal", target=pick)])
            continue
        foes = [j for j in range(n_agents, u) if alive[j] and dist[j] < sight[i]]
        if not foes:
            orders.append([Order("stop")])
            continue
        in_range = [j for j in foes if dist[j] <= SHOOT]
        pick = (min(in_range, key=lambda j: (hit_points[j], dist[j], j)) if in_range
                else min(foes, key=lambda j: (dist[j], j)))
        orders.append([Order("attack", target=pick)])
    return orders
