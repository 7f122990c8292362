"""Drawing a SMAC battle as an RGB array (no window system needed).

Walls are dark cells. Units are discs of their true radius in their team's colour (allies blue,
enemies red; air units paler), with a health bar above (green, with shields in cyan on top) and
their type's letter (:data:`LETTERS`) written on them. Dead units are not drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

SCALE = 16  # pixels per map unit
_BACKGROUND = (236, 232, 220)
_WALL = (110, 100, 90)
_GRID = (214, 208, 194)
_TEAM = ((45, 105, 200), (205, 60, 50))
_AIR = ((130, 165, 225), (230, 140, 130))
_BAR_BACK, _HEALTH, _SHIELD = (60, 60, 60), (70, 190, 80), (80, 200, 230)
_TEXT = (255, 255, 255)
LETTERS = {"marine": "m", "marauder": "M", "medivac": "V", "stalker": "s", "zealot": "Z",
           "colossus": "C", "zergling": "z", "baneling": "b", "hydralisk": "h",
           "spine_crawler": "S"}


def render_smac(size: float, pos: Sequence[Sequence[float]], radius: Sequence[float],
                team: Sequence[int], health: Sequence[float], shield: Sequence[float],
                letters: Sequence[str], air: Sequence[bool],
                walls: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """``[size·16, size·16, 3]`` uint8 picture of one battle; ``health``/``shield`` are
    fractions of the maximum (``shield`` 0 for units without shields); ``walls`` lists the
    unwalkable cells ``(x, y)``."""
    px = int(size * SCALE)
    image = Image.new("RGB", (px, px), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    for k in range(0, int(size) + 1, 4):
        draw.line([(k * SCALE, 0), (k * SCALE, px)], fill=_GRID)
        draw.line([(0, k * SCALE), (px, k * SCALE)], fill=_GRID)
    for x, y in walls:
        draw.rectangle((x * SCALE, px - (y + 1) * SCALE, (x + 1) * SCALE - 1,
                        px - y * SCALE - 1), fill=_WALL)
    for (x, y), r, side, h, s, letter, flying in zip(pos, radius, team, health, shield, letters,
                                                     air, strict=True):
        if h <= 0:
            continue
        cx, cy, rp = x * SCALE, px - y * SCALE, max(r * SCALE, 3.0)  # north is up
        colour = (_AIR if flying else _TEAM)[side]
        draw.ellipse((cx - rp, cy - rp, cx + rp, cy + rp), fill=colour)
        draw.text((cx - 3, cy - 6), letter, fill=_TEXT)
        top, width = cy - rp - 6, 2 * rp
        draw.rectangle((cx - rp, top, cx + rp, top + 3), fill=_BAR_BACK)
        draw.rectangle((cx - rp, top, cx - rp + width * h, top + 3), fill=_HEALTH)
        if s > 0:
            draw.rectangle((cx - rp, top - 3, cx - rp + width * s, top - 1), fill=_SHIELD)
    return np.asarray(image, dtype=np.uint8)
