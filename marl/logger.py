"""The one writer of training metrics: TensorBoard scalars, a config text, and a progress bar.

Learners and runners return metrics (plain numbers or 0-dim tensors); only this module turns
them into log records. Every algorithm writes into one tag vocabulary, ``TAGS``, so runs of
different algorithms line up in TensorBoard; a tag outside it is rejected so that a typo shows
up at once instead of as a silently missing curve. Algorithms with metrics of their own add
them with ``register_tags``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Mapping
from types import TracebackType

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

TAGS: dict[str, str] = {
    "train/return_mean": "mean episode return (summed over agents) of training episodes",
    "train/return_std": "standard deviation of training episode returns",
    "train/episode_length": "mean length of training episodes, in env steps",
    "train/win_rate": "fraction of training episodes won (where the env defines a win)",
    "test/return_mean": "mean return of greedy evaluation episodes",
    "test/return_std": "standard deviation of evaluation returns",
    "test/return_ci95": "half-width of the 95% confidence interval of the evaluation mean",
    "test/win_rate": "fraction of evaluation episodes won",
    "test/episode_length": "mean length of evaluation episodes, in env steps",
    "explore/epsilon": "current epsilon of epsilon-greedy exploration",
    "learner/loss": "training loss, averaged over the updates since the last record",
    "learner/td_error_abs": "mean absolute TD error over valid transitions",
    "learner/q_taken_mean": "mean Q value of the actions taken",
    "learner/target_mean": "mean TD target",
    "learner/grad_norm": "gradient norm before clipping (mean since the last record)",
    "speed/env_steps_per_s": "environment steps (over all batched copies) per second",
    "speed/updates_per_s": "learner updates per second",
}

_TAG_FORM = re.compile(r"[a-z0-9_]+/[A-Za-z0-9_.]+")

Number = float | int | torch.Tensor


def register_tags(tags: Mapping[str, str]) -> None:
    """Add ``tag -> meaning`` entries; re-registering a tag with another meaning is an error."""
    for tag, meaning in tags.items():
        if not _TAG_FORM.fullmatch(tag):
            raise ValueError(f"tag {tag!r} is not of the form 'group/name'")
        if TAGS.get(tag, meaning) != meaning:
            raise ValueError(f"tag {tag!r} is already registered as {TAGS[tag]!r}")
    TAGS.update(tags)


def _check_tag(tag: str) -> None:
    if tag in TAGS:
        return
    close = difflib.get_close_matches(tag, TAGS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown metric tag {tag!r}{hint} Known tags: {', '.join(sorted(TAGS))}. "
        "New tags are added with marl.logger.register_tags."
    )


def _to_float(tag: str, value: Number) -> float:
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            raise ValueError(f"metric {tag!r} must be a 0-dim tensor, not {tuple(value.shape)}")
        return float(value.item())  # the host sync: learners hand tensors over un-synced
    return float(value)


class RunLogger:
    """Writes one run's metrics to ``run_dir`` and shows progress over env steps."""

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        total_steps: int,
        progress: bool = True,
        tensorboard: bool = True,
        start_step: int = 0,
    ) -> None:
        self.run_dir = os.fspath(run_dir)
        # A resumed run restarts at its checkpoint's step: purge_step hides what the run had
        # logged past it (TensorBoard's readers drop it), so each step keeps one value.
        purge = start_step + 1 if start_step else None
        self._writer = (SummaryWriter(log_dir=self.run_dir, purge_step=purge)
                        if tensorboard else None)
        self._bar = tqdm(
            total=total_steps,
            initial=start_step,
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
            disable=not progress,
        )
        self._closed = False

    def log(self, group: str, metrics: Mapping[str, Number], step: int) -> None:
        """Write ``metrics`` as scalars ``group/name`` at ``step``; nan and inf are kept as is."""
        self._check_open()
        # Convert everything before writing anything, so a bad metric leaves no partial record.
        values = {}
        for name, value in metrics.items():
            tag = f"{group}/{name}"
            _check_tag(tag)
            values[tag] = _to_float(tag, value)
        if self._writer is not None:
            for tag, value in values.items():
                self._writer.add_scalar(tag, value, global_step=step)

    def text(self, tag: str, text: str) -> None:
        """Write ``text`` (e.g. the resolved config) fenced, so TensorBoard shows it verbatim."""
        self._check_open()
        if self._writer is not None:
            longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
            fence = "`" * max(3, longest + 1)
            self._writer.add_text(tag, f"{fence}\n{text}\n{fence}")

    def progress(self, step: int, *, steps_per_s: float, recent_return: float | None) -> None:
        """Move the bar to the absolute ``step``; tqdm derives the ETA from its own rate."""
        self._check_open()
        self._bar.update(step - self._bar.n)
        ret = "n/a"
        if recent_return is not None and math.isfinite(recent_return):
            ret = f"{recent_return:.3g}"
        self._bar.set_postfix_str(f"{steps_per_s:,.0f} steps/s ret={ret}", refresh=True)

    def close(self) -> None:
        """Flush and close the writer and the bar; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
        self._bar.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("RunLogger is closed")

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
