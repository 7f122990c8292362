"""The ground of a SMAC map: which cells units walk on, and the routes between them.

A map is a grid of 1 × 1 cells, ``walkable [X, Y]`` (cell ``(x, y)`` covers ``[x, x+1) ×
[y, y+1)``), read from the map file (:mod:`marl.envs.smac.mapdata`). Ground units stand only
on walkable cells; air units and cliff-walkers (the Colossus) ignore the grid.

Pinches
    Some maps join two walkable regions only at a cell corner (``corridor``'s choke meets its
    room diagonally); the game lets units through, so a point within ``PINCH`` of such a
    corner counts as walkable.

Routes
    Ground units walk to a goal straight when the segment between the centres of their cell
    and the goal's crosses only walkable ground (``visible [C, C]``, tested at
    ``SIGHT_SAMPLES`` points; always, on a map whose walkable cells form one rectangle), and
    otherwise towards the centre of the next cell of a shortest 8-connected path
    (``next_hop [C, C]``: towards goal cell, from cell), so that they go round walls and up
    ramps as the game's path finder does, rather than sliding along a cliff. ``C = X · Y``:
    3 MB for a 32 × 32 map, computed once per ground (a second or two) and kept for the
    process.
"""

from __future__ import annotations

import math

import torch

from marl.envs.smac.planar import PointConstant, where_points

PINCH = 0.3  # reach of a walkable cell corner (see the module doc)
SIGHT_SAMPLES = 64  # points tested along a segment for the line of sight


class Terrain:
    """The walkable cells of a map ``walkable [X, Y]`` (bool), its pinches and routes, on
    ``device``."""

    def __init__(self, walkable: torch.Tensor, device: torch.device) -> None:
        self.walkable = walkable.to(device=device, dtype=torch.bool).contiguous()
        self.size = tuple(walkable.shape)
        self.bounds = torch.tensor(self.size, dtype=torch.float32, device=device)
        self.open_everywhere = bool(self.walkable.all())
        self.pinch = _pinch_corners(self.walkable)
        self.has_pinch = bool(self.pinch.any())
        # on a map whose walkable cells form one rectangle every goal is in sight, and
        # keeping units on the ground is a clamp into it
        box = _rectangle(self.walkable)
        self.convex = box is not None
        if box is not None:
            (x0, y0), (x1, y1) = box
            self.low = PointConstant(torch.tensor([x0, y0], dtype=torch.float32, device=device))
            self.high = PointConstant(torch.tensor([x1 + 1, y1 + 1], dtype=torch.float32,
                                                   device=device) - 1e-4)
        self.next_hop: torch.Tensor | None = None
        self.visible: torch.Tensor | None = None
        if not self.convex:
            hop, seen = _routes(self.walkable)
            self.next_hop, self.visible = hop.to(device), seen.to(device)

    def cell(self, pos: torch.Tensor) -> torch.Tensor:
        """The index ``x · Y + y`` of the cell under ``pos [..., 2]`` (clamped to the map)."""
        c = torch.minimum(pos.clamp(min=0), self.bounds - 1).long()
        return c[..., 0] * self.size[1] + c[..., 1]

    def keep(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """``new`` positions kept on walkable ground: on a rectangle, clamped into it (what
        sliding along its edges gives); else a blocked move keeps whichever of its x and y
        parts stays walkable (sliding along the wall), or stays at ``old``."""
        if self.convex:
            return torch.maximum(torch.minimum(new, self.high.like(new)), self.low.like(new))
        keep_x = torch.stack([new[..., 0], old[..., 1]], -1)
        keep_y = torch.stack([old[..., 0], new[..., 1]], -1)
        out = where_points(self.open(keep_y), keep_y, old)
        out = where_points(self.open(keep_x), keep_x, out)
        return where_points(self.open(new), new, out)

    def open(self, pos: torch.Tensor) -> torch.Tensor:
        """Whether ground units may stand at ``pos [..., 2]`` (outside the map: no)."""
        if self.convex:
            return ((pos >= self.low.like(pos)) & (pos <= self.high.like(pos))).all(-1)
        return _on_ground(self.walkable, self.pinch if self.has_pinch else None, self.bounds,
                          pos)

    def waypoint(self, pos: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Where a ground unit at ``pos`` heads for ``goal`` (both ``[..., 2]``): the goal
        when it is in sight, else the centre of the next cell on a shortest path."""
        if self.next_hop is None or self.visible is None:
            return goal
        here, there = self.cell(pos), self.cell(goal)
        n = self.size[1]
        seen = self.visible[here, there]
        hop = self.next_hop[there, here].long()
        to = torch.stack([torch.div(hop, n, rounding_mode="floor"), hop % n], -1)
        at = torch.stack([torch.div(here, n, rounding_mode="floor"), here % n], -1)
        # through a pinch: to the corner the two cells share, else to the next cell's centre
        diagonal = ((to - at).abs() == 1).all(-1)
        side_a = self.walkable[to[..., 0], at[..., 1]]
        side_b = self.walkable[at[..., 0], to[..., 1]]
        corner = torch.maximum(to, at).to(pos.dtype)
        through = where_points(diagonal & ~side_a & ~side_b, corner, to.to(pos.dtype) + 0.5)
        return where_points(seen, goal, through)


def _on_ground(walkable: torch.Tensor, pinch: torch.Tensor | None, bounds: torch.Tensor,
               pos: torch.Tensor) -> torch.Tensor:
    """Whether ``pos [..., 2]`` is on a walkable cell of ``walkable [X, Y]`` (``bounds``: its
    size as floats) or within ``PINCH`` of a ``pinch`` corner (``[X+1, Y+1]``; None: no
    pinches); outside the map: no."""
    inside = ((pos >= 0) & (pos < bounds)).all(-1)
    c = torch.minimum(pos.clamp(min=0), bounds - 1).long()
    ok = walkable[c[..., 0], c[..., 1]]
    if pinch is not None:
        corner = pos.round()
        k = torch.minimum(corner.clamp(min=0), bounds).long()
        near = ((pos - corner).abs() <= PINCH).all(-1)
        ok = ok | (near & pinch[k[..., 0], k[..., 1]])
    return inside & ok


def _rectangle(walkable: torch.Tensor) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The first and last cell of the walkable cells when they are exactly one axis-aligned
    rectangle, else None."""
    cells = walkable.nonzero()
    if not len(cells):
        return None
    (x0, y0), (x1, y1) = cells.min(0).values.tolist(), cells.max(0).values.tolist()
    full = bool(walkable[x0: x1 + 1, y0: y1 + 1].all())
    return ((x0, y0), (x1, y1)) if full and len(cells) == (x1 - x0 + 1) * (y1 - y0 + 1) \
        else None


def _pinch_corners(walkable: torch.Tensor) -> torch.Tensor:
    """Corners ``[X+1, Y+1]`` where two diagonal walkable cells meet between two blocked
    ones."""
    x, y = walkable.shape
    w = torch.zeros(x + 2, y + 2, dtype=torch.bool, device=walkable.device)
    w[1:-1, 1:-1] = walkable
    sw, se, nw, ne = w[:-1, :-1], w[1:, :-1], w[:-1, 1:], w[1:, 1:]
    return (sw & ne & ~se & ~nw) | (se & nw & ~sw & ~ne)


_STEPS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]


def _diagonal_ok(walkable: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``[X, Y]``: whether a step from each cell by ``(dx, dy)`` may be taken as far as the
    corner goes: straight steps always; diagonal ones when both cells beside the corner are
    walkable (no cutting past a wall's corner) or both are blocked (a pinch)."""
    x, y = walkable.shape
    if dx == 0 or dy == 0:
        return torch.ones(x, y, dtype=torch.bool)
    side_x = torch.zeros(x, y, dtype=torch.bool)
    side_y = torch.zeros(x, y, dtype=torch.bool)
    xs = slice(max(dx, 0), x + min(dx, 0))
    xd = slice(max(-dx, 0), x + min(-dx, 0))
    ys = slice(max(dy, 0), y + min(dy, 0))
    yd = slice(max(-dy, 0), y + min(-dy, 0))
    side_x[xd, :] = walkable[xs, :]  # the cell at (+dx, 0)
    side_y[:, yd] = walkable[:, ys]  # the cell at (0, +dy)
    return side_x == side_y


_ROUTES: dict[tuple[tuple[int, ...], bytes], tuple[torch.Tensor, torch.Tensor]] = {}


def _routes(walkable: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``next_hop`` and ``visible`` of a ground (module doc), computed once per process."""
    walkable = walkable.cpu().contiguous()
    key = (tuple(walkable.shape), walkable.numpy().tobytes())
    if key not in _ROUTES:
        _ROUTES[key] = (_next_hops(walkable), _visible(walkable))
    return _ROUTES[key]


def _visible(walkable: torch.Tensor) -> torch.Tensor:
    """``[C, C]``: whether the segment between two walkable cells' centres crosses only
    walkable ground (pinches included); a blocked cell answers as the closest walkable one."""
    x, y = walkable.shape
    ix = torch.arange(x * y)
    centres = torch.stack([ix // y, ix % y], -1).float() + 0.5
    cells = walkable.reshape(-1).nonzero().squeeze(1)
    pinch = _pinch_corners(walkable)
    bounds = torch.tensor([x, y], dtype=torch.float32)
    ends = centres[cells]
    visible = torch.ones(len(cells), len(cells), dtype=torch.bool)
    for t in torch.linspace(0, 1, SIGHT_SAMPLES):
        visible &= _on_ground(walkable, pinch, bounds,
                              ends.unsqueeze(1) * (1 - t) + ends.unsqueeze(0) * t)
    closest = torch.cdist(centres, ends).argmin(1)
    return visible[closest][:, closest]


def _next_hops(walkable: torch.Tensor) -> torch.Tensor:
    """``next_hop [C, C]`` (int16, indexed [goal cell, from cell]) of the shortest 8-connected
    paths over walkable cells (:func:`_diagonal_ok` steps; Floyd–Warshall over the walkable
    cells); a cell that is the goal or cannot reach it points to itself. Blocked cells (a
    unit can stand in one at a pinch) point to their best walkable neighbour, and a blocked
    goal cell takes the routes of the closest walkable cell."""
    walkable = walkable.cpu().contiguous()
    x, y = walkable.shape
    c = x * y
    ix = torch.arange(c)
    cx, cy = ix // y, ix % y
    goal = walkable.reshape(-1).nonzero().squeeze(1)
    g = len(goal)
    node = torch.full((c,), -1, dtype=torch.long)
    node[goal] = torch.arange(g)
    neighbours = []  # per step: the neighbour cell of every cell and whether it may be taken
    for dx, dy in _STEPS:
        nx, ny = cx + dx, cy + dy
        ok = ((nx >= 0) & (nx < x) & (ny >= 0) & (ny < y)
              & _diagonal_ok(walkable, dx, dy).reshape(-1))
        nb = nx.clamp(0, x - 1) * y + ny.clamp(0, y - 1)
        neighbours.append((nb, ok & walkable.reshape(-1)[nb], math.hypot(dx, dy)))
    dist = torch.full((g, g), math.inf)
    dist.fill_diagonal_(0.0)
    for nb, ok, cost in neighbours:
        edge = ok & walkable.reshape(-1)
        dist[node[ix[edge]], node[nb[edge]]] = cost
    for k in range(g):
        torch.minimum(dist, dist[:, k: k + 1] + dist[k: k + 1, :], out=dist)
    hop = ix.expand(g, c).clone()  # [goal, from]
    hop_cost = torch.full((g, c), math.inf)
    for nb, ok, cost in neighbours:
        way = dist[:, node[nb].clamp(min=0)] + cost  # [goal, from] via that neighbour
        better = ok.unsqueeze(0) & (way < hop_cost)
        hop = torch.where(better, nb.expand(g, c), hop)
        hop_cost = torch.where(better, way, hop_cost)
    stay = hop_cost.isinf() | (goal.unsqueeze(1) == ix.unsqueeze(0))
    hop = torch.where(stay, ix.expand(g, c), hop).to(torch.int16)
    centres = torch.stack([cx, cy], -1).float()
    closest = torch.cdist(centres, centres[goal]).argmin(1)
    return hop[closest]
