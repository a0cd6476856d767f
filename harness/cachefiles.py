"""The files of the on-disk caches: what :mod:`harness.store` (runs) and :mod:`harness.derived`
(tensors computed from runs) share.

Seed folder names, the lock beside each cached thing, fsync, and safetensors files written with
their sha256 and read back as copies. Verification failures of either cache raise
:class:`InvalidEntry` internally and reach the caller as a :class:`CorruptRunWarning`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import safetensors
import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

from harness.validation import check_int

_HASH_CHUNK = 1 << 20  # 1 MiB: large enough that hashing runs at sha256 speed, not syscall speed


class CorruptRunWarning(UserWarning):
    """A corrupt or partial cache entry was set aside or replaced, and will be retrained or recomputed."""


class InvalidEntry(Exception):
    """A cache entry (a run's folder, a derived file) failed verification; the message is the reason."""


def seed_folder(seed: object) -> str:
    """The folder name of a seed, ``seed=<s>``, in both caches; a ValueError unless a non-negative int."""
    return f"seed={check_int('seed', seed, 0)}"


class Locks:
    """The lock of each path a store writes: a :class:`filelock.FileLock` on ``<path>.lock`` beside it."""

    def __init__(self) -> None:
        self._locks: dict[Path, FileLock] = {}

    def __call__(self, target: Path) -> FileLock:
        path = target.parent / f"{target.name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)  # also if the folder was removed since
        if path not in self._locks:
            # One lock object per path, reused: nested use (get_or_train -> save -> load) then
            # re-enters it, where a second object would deadlock on its own file handle.
            self._locks[path] = FileLock(path)
        return self._locks[path]


def storable(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy of ``tensor``, which safetensors always accepts."""
    # safetensors refuses non-contiguous tensors and tensors that share storage (views, tied
    # weights, a state dict saved without cloning).
    return tensor.detach().to("cpu").clone(memory_format=torch.contiguous_format)


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size in bytes of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def fsync_path(path: Path) -> None:
    """Flush a file's, or a folder's entries', data to disk (folders: POSIX only)."""
    if path.is_dir() and os.name != "posix":
        return  # Windows cannot open a folder for fsync; its renames are journaled metadata anyway
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_tensor_file(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> dict:
    """Write ``tensors`` (and text ``metadata``) to a safetensors file, fsync it, and return its
    ``{"sha256", "bytes"}``."""
    save_file(tensors, path, metadata=metadata)
    fsync_path(path)
    sha256, size = file_digest(path)
    return {"sha256": sha256, "bytes": size}


def load_tensor_file(path: Path) -> dict[str, torch.Tensor]:
    """Parse a safetensors file; raises :class:`InvalidEntry` if it does not parse."""
    try:
        mapped = load_file(path)
    except (safetensors.SafetensorError, OSError) as err:
        raise InvalidEntry(f"{path.name} does not parse as safetensors: {err}") from None
    # load_file memory-maps the file: tensors left backed by it would change, or crash the process
    # with SIGBUS, if the file were altered later. Copies make the result independent of the file.
    return {name: tensor.clone() for name, tensor in mapped.items()}
