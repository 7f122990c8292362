"""Drawing a Level-Based Foraging field as an RGB array (no window system needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

CELL = 40
_BACKGROUND = (250, 250, 245)
_GRID = (200, 200, 195)
_FOOD = (218, 80, 40)
_WALL = (70, 70, 75)
_TEXT = (255, 255, 255)
# Player colours, cycled when there are more players.
_PLAYERS = ((45, 110, 200), (40, 160, 90), (150, 70, 180), (200, 160, 30), (60, 170, 190))


def render_lbf(
    rows: int,
    cols: int,
    player_pos: Sequence[Sequence[int]],
    player_level: Sequence[int],
    foods: Sequence[tuple[Sequence[int], int]],
    walls: Sequence[Sequence[int]] = (),
) -> np.ndarray:
    """``[rows·40, cols·40, 3]`` uint8: walls as filled cells, food as squares, players as
    discs, levels written on."""
    image = Image.new("RGB", (cols * CELL, rows * CELL), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    for r, c in walls:
        draw.rectangle((c * CELL, r * CELL, (c + 1) * CELL, (r + 1) * CELL), fill=_WALL)
    for r in range(rows + 1):
        draw.line([(0, r * CELL), (cols * CELL, r * CELL)], fill=_GRID)
    for c in range(cols + 1):
        draw.line([(c * CELL, 0), (c * CELL, rows * CELL)], fill=_GRID)
    for (r, c), level in foods:
        box = (c * CELL + 6, r * CELL + 6, (c + 1) * CELL - 6, (r + 1) * CELL - 6)
        draw.rectangle(box, fill=_FOOD)
        _label(draw, r, c, level)
    for i, ((r, c), level) in enumerate(zip(player_pos, player_level, strict=True)):
        box = (c * CELL + 4, r * CELL + 4, (c + 1) * CELL - 4, (r + 1) * CELL - 4)
        draw.ellipse(box, fill=_PLAYERS[i % len(_PLAYERS)])
        _label(draw, r, c, level)
    return np.asarray(image, dtype=np.uint8).copy()


def _label(draw: ImageDraw.ImageDraw, row: int, col: int, value: int) -> None:
    centre = (col * CELL + CELL // 2, row * CELL + CELL // 2)
    draw.text(centre, str(value), fill=_TEXT, anchor="mm")
