"""Disk space of the run store: what a run takes on disk, the free space, and :class:`DiskFullError`.

The store (:mod:`harness.store`) checks the free space before it trains a run or a cohort
(:func:`check_free`, with :func:`run_size`'s estimate), and turns a disk that fills up while it
writes a run or a derived file into a :class:`DiskFullError` (:func:`disk_full_as_error`): one
message that names the runs folder, the free space, what was needed and the fix, instead of a
raw ``No space left on device`` and a retrain in every later test.

Sizes are estimated from the setting alone (no training, no data loaded except a loader's): the
model's state dict at each saved epoch, the window snapshots, and the arrays of
:class:`harness.training.Run` over the evaluation (test) split, plus the files' overhead.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from harness.data import DIGITS_TEST_SIZE
from harness.models import build
from harness.plugins import load_arrays
from harness.settings import Setting
from harness.specs import NUM_CLASSES, DatasetSpec

# errno values that mean "no room to write": the disk is full, or the user's quota is.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Where the user puts the run store; the names fixtures.options (RUNS_DIR_ENV) and harness.sweep read
# (tests/test_diskspace.py keeps them in step).
RUNS_DIR_FIX = ("free space on that disk, or put the run store on a disk with room: "
                "--runs-dir=DIR (pytest and python -m harness.sweep) or ENSEMBLE_CLAIMS_RUNS_DIR=DIR")

# Overheads of an entry's files (measured on the smoke settings' entries, Dec 2025): a safetensors
# header takes ~84 B per tensor (its JSON name, dtype, shape and offsets), meta.json 4.3-5.2 KB, and
# a file occupies whole 4 KiB blocks on ext4, xfs and tmpfs.
HEADER_BYTES_PER_TENSOR = 128
META_BYTES = 8 * 1024
BLOCK_BYTES = 4096
# Test images of CIFAR-10 and CIFAR-100 (the official test batch), balanced over the classes.
CIFAR_TEST_SIZE = 10_000
FLOAT32_BYTES, INT64_BYTES, FLOAT64_BYTES = 4, 8, 8


class DiskFullError(OSError):
    """The run store's disk has no room for what it must write; the message names the fix.

    Parameters
    ----------
    root : path
        The run store's folder.
    free : int
        Bytes free there.
    needed : int
        Bytes that ``what`` needs (an estimate before training; the tensors' size when a write failed).
    what : str
        What was to be written, e.g. "training 5 runs of digits-mlp (seeds 0-4)".
    cause : str or None
        The error of a write that ran out of room (and was removed); None when the check before
        writing failed.

    Attributes
    ----------
    root : Path
    free, needed : int
    """

    def __init__(self, root: str | os.PathLike, free: int, needed: int, what: str, cause: str | None = None) -> None:
        self.root, self.free, self.needed = Path(root), free, needed
        event = (f"ran out of disk space while {what} ({cause}; removed: nothing half-written is left)"
                 if cause else f"has too little disk space for {what}")
        super().__init__(f"the run store {self.root} {event}: {format_bytes(free)} free there, "
                         f"~{format_bytes(needed)} needed. Fix: {RUNS_DIR_FIX}")
        # Set after __init__: an OSError built with (errno, strerror) would prefix "[Errno 28]" to the message.
        self.errno = errno.ENOSPC

    def __reduce__(self):
        # Keep the fields across pickling (pytest-xdist and Ray send errors between processes).
        return _rebuild, (str(self.root), self.free, self.needed, self.args[0])


def _rebuild(root: str, free: int, needed: int, message: str) -> DiskFullError:
    err = DiskFullError(root, free, needed, "")
    err.args = (message,)
    return err


# ----------------------------------------------------------------------------------------------
# Small pure helpers


def format_bytes(n_bytes: int) -> str:
    """``n_bytes`` for people: "12.3 kB", "8.6 MB" or "1.25 GB" (powers of 1024)."""
    if n_bytes < 2**20:
        return f"{n_bytes / 2**10:.1f} kB"
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes < 2**30 else f"{n_bytes / 2**30:.2f} GB"


def on_disk(payload: int, n_tensors: int) -> int:
    """Bytes a safetensors file of ``n_tensors`` tensors and ``payload`` data bytes occupies: whole blocks."""
    size = payload + 8 + n_tensors * HEADER_BYTES_PER_TENSOR
    return math.ceil(size / BLOCK_BYTES) * BLOCK_BYTES


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the quota) is full.

    An :class:`OSError` carries the errno; safetensors raises its own error type whose message
    ends in ``(os error 28)``.
    """
    if isinstance(err, OSError):
        return err.errno in DISK_FULL_ERRNOS
    text = str(err)
    return any(f"(os error {code})" in text or os.strerror(code) in text for code in DISK_FULL_ERRNOS)


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes free to an unprivileged writer on the disk of ``path`` (its nearest existing folder)."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the store's root is created on its first write
    return shutil.disk_usage(folder).free


def seed_span(seeds: list[int]) -> str:
    """Seeds for a message: "seed 3", "seeds 0-4" (consecutive) or "seeds 0, 2, 5"."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


# ----------------------------------------------------------------------------------------------
# What a run takes


def eval_examples(spec: DatasetSpec) -> int:
    """Examples of the evaluation (test) split of ``spec``, without generating or loading it (except a loader's).

    With ``classes``, the synthetic count is the expected one (its labels are balanced over the whole
    generated set, so the test part's share of the classes varies by ~1%).
    """
    if spec.loader is not None:
        _, _, _, test_y = load_arrays(spec.loader, spec.loader_kwargs)
        n = len(test_y) if spec.classes is None else int(torch.isin(test_y, torch.tensor(spec.classes)).sum())
    else:
        total = {"digits": DIGITS_TEST_SIZE, "synthetic": spec.n_test}.get(spec.name, CIFAR_TEST_SIZE)
        share = 1.0 if spec.classes is None else len(spec.classes) / NUM_CLASSES[spec.name]
        n = math.ceil(total * share)
    return n if spec.limit is None else min(n, spec.limit[1])


@dataclasses.dataclass(frozen=True)
class RunSize:
    """Bytes one stored run of a setting takes on disk, by part (see :func:`run_size`).

    Attributes
    ----------
    n_params : int
        The model's floating-point parameters (a window snapshot's length).
    weights : int
        ``weights.safetensors``: the state dict at each saved epoch.
    arrays : int
        ``arrays.safetensors``: eval_probs (E+1, N, C), final_logits (N, C), labels, losses, and the
        window snapshots (K, n_params), all float32 but labels and losses.
    meta : int
        ``meta.json``.
    """

    n_params: int
    weights: int
    arrays: int
    meta: int

    @property
    def total(self) -> int:
        return self.weights + self.arrays + self.meta


@functools.lru_cache(maxsize=64)
def run_size(setting: Setting) -> RunSize:
    """What one stored run of ``setting`` takes on disk (an estimate within a few percent, files' blocks included).

    Builds the model once (on the CPU, without touching the global random state) to count its
    state dict; the evaluation split is counted by :func:`eval_examples`.
    """
    spec, recipe = setting.dataset, setting.recipe
    with torch.random.fork_rng(devices=[]):  # build() initialises from the global RNG: leave it as it was
        try:
            state = build(setting.model, spec.input_shape, spec.num_classes).state_dict()
        except ValueError as exc:  # a factory's error must say which setting it belongs to, as in training
            raise ValueError(f"setting {setting.name!r}: {exc}") from exc
    state_bytes = sum(t.numel() * t.element_size() for t in state.values())
    n_params = sum(t.numel() for t in state.values() if t.is_floating_point())
    saved = len(recipe.saved_epochs)
    snapshots = 0 if recipe.window is None else recipe.window.snapshots
    n, c, epochs = eval_examples(spec), spec.num_classes, recipe.epochs
    arrays = (FLOAT32_BYTES * ((epochs + 1) * n * c + n * c + snapshots * n_params)
              + INT64_BYTES * n + 2 * FLOAT64_BYTES * epochs)
    return RunSize(n_params=n_params, weights=on_disk(saved * state_bytes, saved * len(state)),
                   arrays=on_disk(arrays, 6), meta=META_BYTES)


# ----------------------------------------------------------------------------------------------
# Checks


def check_free(root: str | os.PathLike, needed: int, what: str) -> None:
    """Raise :class:`DiskFullError` unless the disk of ``root`` has ``needed`` bytes free.

    Parameters
    ----------
    root : path
        The run store's folder (it may not exist yet).
    needed : int
        Bytes ``what`` will write.
    what : str
        For the message, e.g. "training 5 runs of digits-mlp (seeds 0-4)".
    """
    free = free_bytes(root)
    if free < needed:
        raise DiskFullError(root, free, needed, what)


@contextmanager
def disk_full_as_error(root: str | os.PathLike, what: str, needed: int) -> Iterator[None]:
    """Turn a disk-full error raised inside the block into a :class:`DiskFullError` about ``root``.

    The block must remove what it half-wrote before the error leaves it (a ``finally``): the
    message says nothing half-written is left, and the free space is measured after the removal.
    Other errors pass unchanged.
    """
    try:
        yield
    except DiskFullError:
        raise
    except Exception as err:  # OSError, or safetensors' own error type (see is_disk_full)
        if not is_disk_full(err):
            raise
        cause = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise DiskFullError(root, free_bytes(root), needed, what, cause) from err
