"""Device names from users (configs, flags, ``make(device=...)``), checked before torch sees them.

``torch.device("cudax")`` raises a bare ``RuntimeError`` and ``torch.device("cuda")`` succeeds
on a machine without a GPU, failing later at the first allocation; here both are a
``ValueError`` that names the device and what is allowed. :func:`free_memory` says how much a
device can still hold, for allocations that would otherwise fail hours later.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^(cpu|cuda|mps)(:(\d+))?$")
ALLOWED = "cpu, cuda, cuda:<index> or mps"


def parse_device(name: str | torch.device, key: str = "device") -> torch.device:
    """``name`` as a ``torch.device``; ``ValueError`` unless it is one of :data:`ALLOWED`
    (``key`` names the setting in the message)."""
    if isinstance(name, torch.device):
        return name
    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"{key}={name!r} is not a device: expected {ALLOWED}")
    return torch.device(name)


def available_device(name: str | torch.device, key: str = "device") -> torch.device:
    """:func:`parse_device`, and ``ValueError`` when this machine does not have the device.

    A bare ``cuda`` becomes the current CUDA device with its index (``cuda:0``): tensors made
    on ``cuda`` report ``cuda:0``, and ``torch.device("cuda") != torch.device("cuda:0")``, so an
    environment on the bare name would refuse its own policy's actions."""
    device = parse_device(name, key)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{key}={str(name)!r} is not available: CUDA is not available "
                             "on this machine (use cpu)")
        if device.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        if device.index >= count:
            raise ValueError(f"{key}={str(name)!r} is not available: this machine has "
                             f"{count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{key}={str(name)!r} is not available: MPS (Apple GPUs) is not "
                         "available on this machine (use cpu)")
    return device


def free_memory(device: torch.device) -> int | None:
    """Bytes ``device`` can still hold: a CUDA device's free memory, or on a CPU the memory
    Linux reports available (``MemAvailable``); None where it is not known."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def on_device(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it (through dicts, lists and tuples) on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: on_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_device(v, device) for v in value)
    return value
