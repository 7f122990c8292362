"""Saving and loading a whole training run, safely.

A checkpoint is one file: a fixed header (magic ``MARLCKPT``, format version, body length,
SHA-256 of the body) followed by the ``torch.save`` bytes of ``{"format", "version",
"identity", "payload"}``. The header lets a load tell a truncated, corrupted or foreign file
apart from a good one *before* unpickling anything, and the write goes through a temp file in
the same folder plus ``os.replace``, so a crash mid-save never destroys the previous
checkpoint. ``identity`` (algorithm, environment, agent count, shapes, ...) is stored next to
the payload so resuming a run with a mismatched configuration fails loudly instead of loading
weights into the wrong model.

Loading is safe on files from anyone: the body is read with ``torch.load(weights_only=True)``,
which rebuilds tensors and plain values (dicts, lists, strings, numbers) and refuses anything
else *before* running it. marl writes nothing else into a checkpoint (observations, generator
states and configs are stored as tensors and dicts), so a file that needs a class or a
function was forged or altered, and is refused with :class:`CheckpointError`. The digest only
detects damage: anyone can write a valid header, so it is no proof of origin.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import struct
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

FORMAT_VERSION = 1
MAGIC = b"MARLCKPT"
_FORMAT = "marl-checkpoint"
# magic, version (uint32), body length (uint64), SHA-256 digest of the body; big-endian.
_HEADER = struct.Struct(">8sIQ32s")
_STEP_RE = re.compile(r"^step_(\d+)(?:-(\d+))?\.pt$")
_TEMP_RE = re.compile(r"^\.(step_\d+(?:-\d+)?\.pt|lineage\.json)\..+\.tmp$")
_CHUNK = 1 << 24  # bytes hashed at a time
LINEAGE = "lineage.json"  # the checkpoints of a run folder in the order they were written


class CheckpointError(RuntimeError):
    """A checkpoint could not be loaded; the message names the file, the problem and a fix."""


def checkpoint_name(t_env: int, copy: int = 1) -> str:
    """File name for a checkpoint at ``t_env`` steps, zero-padded so names sort like steps;
    ``copy`` > 1 names a later checkpoint at the same step (a run resumed from an earlier
    checkpoint reaches steps its abandoned branch had saved, and must not overwrite them)."""
    if t_env < 0:
        raise ValueError(f"t_env must be >= 0, got {t_env}")
    return f"step_{t_env:09d}.pt" if copy == 1 else f"step_{t_env:09d}-{copy}.pt"


def _step_key(path: Path) -> tuple[int, int]:
    match = _STEP_RE.match(path.name)
    assert match is not None
    return int(match.group(1)), int(match.group(2) or 1)


def checkpoints(folder: str | os.PathLike) -> list[Path]:
    """The ``step_<int>.pt`` files in ``folder``, by step (not by the order they were written)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _STEP_RE.match(p.name) and p.is_file()]
    return sorted(found, key=_step_key)


def _lineage(folder: Path) -> list[dict[str, Any]]:
    """The entries of ``folder``'s lineage file, oldest written first; [] when there is none.

    Only entries naming a ``step_*.pt`` file of this folder are kept: the file is data, and a
    name in it must never point outside the folder (pruning deletes what it names)."""
    path = folder / LINEAGE
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())["written"]
        return [e for e in entries if isinstance(e, dict)
                and isinstance(e.get("file"), str) and _STEP_RE.match(e["file"])]
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"{path} is unreadable ({err}); checkpoints are taken in step order",
                      stacklevel=3)
        return []


def written_order(folder: str | os.PathLike) -> list[Path]:
    """The checkpoints in ``folder``, oldest *written* first.

    The lineage file records the order of writing; files it does not name (runs from before
    it existed) count as older than every recorded one, in step order. So after a rollback
    (resuming from an earlier checkpoint) the newest checkpoint is the new branch's, not the
    abandoned branch's higher step."""
    folder = Path(folder)
    present = {p.name: p for p in checkpoints(folder)}
    recorded = [e["file"] for e in _lineage(folder) if e["file"] in present]
    last_write = {name: i for i, name in enumerate(recorded)}  # a name's latest entry wins
    unrecorded = [p for name, p in present.items() if name not in last_write]
    return unrecorded + [present[name] for name in sorted(last_write, key=last_write.__getitem__)]


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint in ``folder`` written last (see :func:`written_order`); None if none."""
    found = written_order(folder)
    return found[-1] if found else None


def record_written(path: str | os.PathLike, parent: str | None) -> None:
    """Append ``path`` to its folder's lineage file (written atomically), with the checkpoint
    its run continued from (``parent``: a file name in the folder, or a path outside it)."""
    path = Path(path)
    entries = _lineage(path.parent)
    entries.append({"file": path.name, "parent": parent})
    data = json.dumps({"written": entries}, indent=1).encode()
    _write_atomic(path.parent / LINEAGE, lambda handle: handle.write(data))


def prune_checkpoints(folder: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the ``keep`` checkpoints written last; returns the deleted files."""
    order = written_order(folder)
    old = order[: max(0, len(order) - keep)]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def remove_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of saves that were killed before their rename."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if _TEMP_RE.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def save_checkpoint(
    path: str | os.PathLike, payload: dict[str, Any], *, identity: dict[str, Any]
) -> Path:
    """Atomically write ``payload`` (and ``identity``) to ``path``; returns the path.

    The body is serialized straight into a temp file in the same directory (``os.replace`` is
    only atomic within one filesystem), never into memory: a payload holding a replay of several
    GiB must not need that much memory again to be saved. The digest is read back from the
    file and the header written in front; then the file is fsynced and renamed over ``path``.
    Any exception before the rename leaves ``path`` as it was and removes the temp file.
    """
    path = Path(path)
    record = {"format": _FORMAT, "version": FORMAT_VERSION, "identity": identity,
              "payload": payload}

    def write(handle: BinaryIO) -> None:
        handle.write(bytes(_HEADER.size))  # the header once the body's length and digest are known
        torch.save(record, handle)
        length = handle.tell() - _HEADER.size
        handle.flush()
        handle.seek(_HEADER.size)
        digest = _digest(handle, length)
        handle.seek(0)
        handle.write(_HEADER.pack(MAGIC, FORMAT_VERSION, length, digest))

    _write_atomic(path, write)
    return path


def _digest(handle: BinaryIO, length: int) -> bytes:
    """SHA-256 of the next ``length`` bytes of ``handle``, read in chunks."""
    sha = hashlib.sha256()
    while length > 0:
        chunk = handle.read(min(length, _CHUNK))
        if not chunk:
            break
        sha.update(chunk)
        length -= len(chunk)
    return sha.digest()


def _write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temp file beside ``path``, fsync it and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes it private; a checkpoint is not
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory, so best effort."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _missing_message(path: Path) -> str:
    folder = path.parent
    if not folder.is_dir():
        return f"checkpoint {path} does not exist (folder {folder} does not exist either)"
    found = sorted(p.name for p in folder.iterdir() if p.suffix == ".pt" and p.is_file())
    if not found:
        return f"checkpoint {path} does not exist and {folder} holds no .pt checkpoints"
    return (
        f"checkpoint {path} does not exist; checkpoints in {folder}: {', '.join(found)} "
        "(pass one of these)"
    )


def _earlier(path: Path) -> str:
    """What a command-line user can do instead of loading the damaged ``path``."""
    others = [p for p in written_order(path.parent) if p.name != path.name]
    if not others:
        return f"no other checkpoint is in {path.parent}; copy the file again or start a new run"
    return (f"pass an earlier checkpoint file instead, e.g. --resume {others[-1]} (or "
            f"--checkpoint {others[-1]} for eval and render), or copy the file again")


def _verified(path: Path, handle: BinaryIO) -> None:
    """Check ``path``'s header, body length and digest, reading ``handle`` in chunks (never
    the whole file at once), and leave ``handle`` at the start of the body."""
    data = handle.read(_HEADER.size)
    size = os.fstat(handle.fileno()).st_size
    if data[: len(MAGIC)] != MAGIC and not (len(data) < len(MAGIC) and MAGIC.startswith(data)):
        raise CheckpointError(
            f"{path} is not a marl checkpoint (no {MAGIC!r} magic bytes); "
            "checkpoints must be written by marl.checkpoint.save_checkpoint"
        )
    if len(data) < _HEADER.size:
        raise CheckpointError(
            f"checkpoint {path} is truncated ({size} bytes, the header alone needs "
            f"{_HEADER.size}); the save was interrupted - {_earlier(path)}"
        )
    _, version, length, digest = _HEADER.unpack(data)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, this code reads version "
            f"{FORMAT_VERSION}; load it with the marl version that wrote it"
        )
    body = size - _HEADER.size
    if body != length:
        problem = "truncated" if body < length else "corrupt (trailing bytes)"
        raise CheckpointError(
            f"checkpoint {path} is {problem}: header promises a {length}-byte body, file holds "
            f"{body}; {_earlier(path)}"
        )
    if _digest(handle, length) != digest:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: SHA-256 digest mismatch (bytes changed after "
            f"saving); {_earlier(path)}"
        )
    handle.seek(_HEADER.size)


def _normalize(value: Any) -> Any:
    """Tuples and lists compare equal, so a shape from a config file matches one from code."""
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    return value


def check_identity(path: str | os.PathLike, saved: dict[str, Any],
                   expected: dict[str, Any]) -> None:
    """Raise CheckpointError naming every key where ``saved`` and ``expected`` differ."""
    missing = "<missing>"
    diffs = [
        f"{key}: saved {saved.get(key, missing)!r} vs expected {expected.get(key, missing)!r}"
        for key in sorted(set(saved) | set(expected), key=str)
        if _normalize(saved.get(key, missing)) != _normalize(expected.get(key, missing))
    ]
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} belongs to a different run ({'; '.join(diffs)}); "
            "resume with the configuration it was saved with, or start a new run"
        )


def _load_body(path: Path, handle: BinaryIO, map_location: str | torch.device) -> Any:
    """The verified body of ``path`` (open as ``handle``), loaded weights-only."""
    _verified(path, handle)
    try:
        return torch.load(handle, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines()]
        reason = next((line for line in lines if "unsupported" in line.lower()),
                      "objects a weights-only load does not admit")
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds more than tensors and plain values "
            f"({reason}). marl checkpoints never do, so this file was not written by marl or "
            "was altered; it was not loaded and nothing in it ran"
        ) from None
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} passed its digest check but torch.load failed: {err!r}; "
            "it may need a torch version that is not available here"
        ) from err


def load_checkpoint(
    path: str | os.PathLike,
    *,
    identity: dict[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load and verify ``path``, returning its payload; every failure raises CheckpointError.

    When ``identity`` is given, every key that differs from the saved identity is reported,
    so resuming with the wrong algorithm, environment or shapes fails before any weights load.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise CheckpointError(_missing_message(path)) from None
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    with handle:
        record = _load_body(path, handle, map_location)
    if not (
        isinstance(record, dict)
        and record.get("format") == _FORMAT
        and record.get("version") == FORMAT_VERSION
        and isinstance(record.get("payload"), dict)
    ):
        raise CheckpointError(
            f"checkpoint {path} has a valid header but an unexpected body layout; "
            "it was not written by marl.checkpoint.save_checkpoint"
        )
    if identity is not None:
        check_identity(path, record.get("identity") or {}, identity)
    return record["payload"]
