"""Episode replay for value methods: whole padded episodes in preallocated tensors.

Layout, for ``capacity`` episodes of at most ``T`` steps (``T = episode_limit``):

- per-step fields ``[capacity, T, ...]`` (actions, rewards, terminated, ...), and
- per-state fields ``[capacity, T + 1, ...]`` (obs, state, avail): the extra slot holds the
  observation the episode ended on, which the target at the last step bootstraps from;
- ``filled [capacity, T]`` bool marks real steps, ``length [capacity]`` the step count.

Episodes are written whole: :meth:`EpisodeReplay.insert` takes the episodes that finished in
one environment step, already laid out as rows, and writes them with one indexed copy per
field at the next slots of a ring (the oldest episodes are overwritten). Sampling is uniform
over stored episodes, without replacement within a batch, and returns the batch on the
training device cut to its longest episode; everything past an episode's end is zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from marl.devices import free_memory


@dataclass(frozen=True)
class Field:
    """One stored quantity: per-step shape after ``[capacity, T(+1)]`` and dtype."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    per_state: bool = False  # True: T + 1 entries (observations), False: T (transitions)


class ReplayTooLarge(ValueError):
    """A replay larger than the device's free memory (allocating it would exhaust memory)."""


def episode_bytes(fields: dict[str, Field], max_len: int) -> int:
    """Bytes one stored episode of up to ``max_len`` steps takes (``filled`` and ``length``
    included)."""
    per = sum((max_len + 1 if f.per_state else max_len) * math.prod(f.shape) * f.dtype.itemsize
              for f in fields.values())
    return per + max_len + 8


class EpisodeBatch(dict):
    """Sampled episodes: fields ``[B, L(+1), ...]``, ``filled [B, L]``, ``length [B]``."""

    @property
    def size(self) -> int:
        return self["length"].shape[0]

    @property
    def max_len(self) -> int:
        return self["filled"].shape[1]


class EpisodeReplay:
    """A ring of ``capacity`` episodes of up to ``max_len`` steps on ``device``."""

    def __init__(
        self,
        fields: dict[str, Field],
        capacity: int,
        max_len: int,
        *,
        device: str | torch.device = "cpu",
    ) -> None:
        if capacity < 1 or max_len < 1:
            raise ValueError(f"EpisodeReplay needs capacity >= 1 and max_len >= 1, got "
                             f"capacity={capacity}, max_len={max_len}")
        reserved = {"filled", "length"} & fields.keys()
        if reserved:
            raise ValueError(f"EpisodeReplay field names {sorted(reserved)} are reserved")
        self.fields = dict(fields)
        self.capacity = capacity
        self.max_len = max_len
        self.device = torch.device(device)
        # a replay that does not fit is refused here, with a message, rather than the process
        # killed by the kernel once it has filled
        per_episode, free = episode_bytes(self.fields, max_len), free_memory(self.device)
        if free is not None and capacity * per_episode > free:
            raise ReplayTooLarge(
                f"a replay of {capacity} episodes of up to {max_len} steps needs "
                f"{capacity * per_episode / 2**30:.1f} GiB on {self.device}, which has "
                f"{free / 2**30:.1f} GiB free: lower buffer_size (at most "
                f"{free // per_episode} episodes fit) or give the replay another device "
                "(replay.device)")
        # Rows are only read once written, and always written whole (``insert``), so the big
        # fields start uninitialised: memory is taken as the replay fills, not all at once.
        self.data = {
            name: torch.empty(
                (capacity, max_len + 1 if f.per_state else max_len, *f.shape),
                dtype=f.dtype,
                device=self.device,
            )
            for name, f in self.fields.items()
        }
        self.data["filled"] = torch.zeros(capacity, max_len, dtype=torch.bool, device=self.device)
        self.data["length"] = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.pos = 0  # next slot to write
        self.size = 0  # slots holding an episode
        self.episodes_written = 0

    def __len__(self) -> int:
        return self.size

    def insert(self, episodes: dict[str, torch.Tensor]) -> torch.Tensor:
        """Write ``k`` whole episodes (every field ``[k, T(+1), ...]``, plus ``length [k]``).

        Returns the slots written. Steps at or past an episode's length must already be zero
        (the runner keeps its staging rows that way); ``filled`` is derived from ``length``.
        """
        missing = (self.fields.keys() | {"length"}) - episodes.keys()
        if missing:
            raise ValueError(f"EpisodeReplay.insert: missing fields {sorted(missing)}")
        k = episodes["length"].shape[0]
        if k > self.capacity:
            raise ValueError(f"EpisodeReplay.insert: {k} episodes exceed capacity {self.capacity}")
        slots = (self.pos + torch.arange(k, device=self.device)) % self.capacity
        for name in self.fields:
            self.data[name].index_copy_(0, slots, episodes[name].to(self.device))
        length = episodes["length"].to(self.device)
        self.data["length"].index_copy_(0, slots, length)
        steps = torch.arange(self.max_len, device=self.device)
        self.data["filled"].index_copy_(0, slots, steps < length[:, None])
        self.pos = (self.pos + k) % self.capacity
        self.size = min(self.size + k, self.capacity)
        self.episodes_written += k
        return slots

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        device: str | torch.device | None = None,
    ) -> EpisodeBatch:
        """``batch_size`` distinct stored episodes, cut to the longest, moved to ``device``."""
        if batch_size > self.size:
            raise ValueError(f"cannot sample {batch_size} episodes from a replay holding "
                             f"{self.size}")
        idx = torch.randperm(self.size, generator=generator, device=generator.device)[:batch_size]
        return self.gather(idx.to(self.device), device)

    def gather(self, idx: torch.Tensor, device: str | torch.device | None = None) -> EpisodeBatch:
        """The episodes in slots ``idx``, cut to the longest of them."""
        length = self.data["length"][idx]
        cut = int(length.max())
        device = self.device if device is None else torch.device(device)
        batch = EpisodeBatch()
        for name, f in self.fields.items():
            batch[name] = self.data[name][idx, : cut + 1 if f.per_state else cut].to(device)
        batch["filled"] = self.data["filled"][idx, :cut].to(device)
        batch["length"] = length.to(device)
        return batch

    def state_dict(self) -> dict:
        """The stored episodes, as tensors that *share* the replay's memory (a checkpoint of a
        replay of several GiB must not copy it): serialise it before the next ``insert``."""
        return {"data": {k: _leading_rows(v, self.size) for k, v in self.data.items()},
                "pos": self.pos, "size": self.size, "episodes_written": self.episodes_written}

    def load_state_dict(self, state: dict) -> None:
        size = state["size"]
        if size > self.capacity:
            raise ValueError(f"replay state holds {size} episodes, capacity is {self.capacity}")
        for name, value in state["data"].items():
            if name not in self.data or value.shape[1:] != self.data[name].shape[1:]:
                raise ValueError(f"replay state field {name!r} does not match this replay")
            self.data[name][:size] = value.to(self.device)
        self.pos, self.size = state["pos"], size
        self.episodes_written = state["episodes_written"]


def _leading_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """``tensor[:rows]`` on a storage cut to those rows, without copying them: ``torch.save``
    writes a view's whole storage, so a plain slice of a partly filled replay would write
    every slot."""
    row_bytes = math.prod(tensor.shape[1:]) * tensor.dtype.itemsize
    storage = tensor.untyped_storage()[: rows * row_bytes]
    return torch.empty(0, dtype=tensor.dtype, device=tensor.device).set_(
        storage, 0, (rows, *tensor.shape[1:]), tensor.stride())
