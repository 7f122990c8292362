"""Writing rendered frames (``[H, W, 3]`` uint8 arrays) to PNG and GIF files, without pyglet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def _image(frame: np.ndarray) -> Image.Image:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"a frame is a uint8 array [H, W, 3], got {frame.dtype} {list(frame.shape)}"
        )
    return Image.fromarray(frame, mode="RGB")


def save_png(frame: np.ndarray, path: str | Path) -> Path:
    """Write one frame as a PNG file and return its path."""
    path = Path(path)
    _image(frame).save(path, format="PNG")
    return path


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 5.0) -> Path:
    """Write frames as a looping GIF at ``fps`` frames per second and return its path."""
    if len(frames) == 0:
        raise ValueError("save_gif needs at least one frame")
    images = [_image(f) for f in frames]
    path = Path(path)
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(1, round(1000 / fps)),
        loop=0,
    )
    return path
