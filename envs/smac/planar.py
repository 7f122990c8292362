"""Arithmetic on batches of 2-D points ``[..., 2]`` that stays on torch's fast CPU paths.

At the simulator's sizes (a few thousand units) an elementwise op costs its dispatch, not its
arithmetic, as long as its operands have one shape and are contiguous. Broadcasting into the
trailing x/y axis of 2 (a ``[B, U, 1]`` condition, a ``[2]`` bound) or reducing over it
(``norm``) takes torch's strided loops instead, at 3-6 times the cost on a CPU (timed on
``[1024, 6, 2]``). These helpers give the same values (``length``: up to float rounding)
through the fast paths.
"""

from __future__ import annotations

import torch


def length(v: torch.Tensor) -> torch.Tensor:
    """The lengths ``[...]`` of the vectors ``v [..., 2]``: ``sqrt(x² + y²)``, as ``norm``
    but for float rounding (``norm`` sums in another order)."""
    square = v * v
    return (square[..., 0] + square[..., 1]).sqrt()


def per_point(mask: torch.Tensor) -> torch.Tensor:
    """``mask [...]`` repeated for x and y, materialised ``[..., 2]``: the condition of a
    ``where`` over points."""
    return torch.stack((mask, mask), -1)


SHAPES_KEPT = 8  # a PointConstant forgets its shapes past this many (copy counts vary)


class PointConstant:
    """Constant points (a bound ``[2]``, one far-away spot per unit ``[U, 2]``) at the shape
    of the points they meet, built once per shape (the last ``SHAPES_KEPT`` shapes kept)."""

    def __init__(self, point: torch.Tensor) -> None:
        self.point = point
        self._at: dict[torch.Size, torch.Tensor] = {}

    def like(self, points: torch.Tensor) -> torch.Tensor:
        """The constant at ``points``'s shape (contiguous; never write to it)."""
        full = self._at.get(points.shape)
        if full is None:
            if len(self._at) >= SHAPES_KEPT:
                self._at.clear()
            full = self._at[points.shape] = self.point.expand(points.shape).contiguous()
        return full
