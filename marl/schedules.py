"""Schedules over environment steps (exploration, learning rates)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearSchedule:
    """``start`` at step 0, moving linearly to ``finish`` at ``duration`` steps, then constant."""

    start: float
    finish: float
    duration: int

    def __call__(self, t: int) -> float:
        if self.duration <= 0:
            return self.finish
        frac = min(max(t, 0) / self.duration, 1.0)
        return self.start + frac * (self.finish - self.start)
