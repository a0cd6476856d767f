"""Where a result came from: the git checkout, the library versions and the machine.

One definition for everything the harness writes: the run store's ``meta.json`` records
:func:`git_info` of the harness's own checkout and :func:`versions`; ``results.json`` records
:func:`git_info` of the pytest root, :func:`versions` and :func:`machine` (reports/SCHEMA.md).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

# Seconds a git command may take: a slow network file system must not stall a test session.
GIT_TIMEOUT_S = 10.0
# The distributions whose versions change what a run or a decision computes.
DISTRIBUTIONS = ("torch", "numpy", "scipy", "safetensors")
HARNESS_ROOT = Path(__file__).resolve().parent


def git_info(cwd: Path | str = HARNESS_ROOT) -> dict:
    """``{"commit", "dirty"}`` of the checkout at ``cwd``; both None without git or outside a repository.

    ``dirty`` counts changes to tracked files only, as ``git describe --dirty`` does.
    """
    def git(*args: str) -> str:
        # --no-optional-locks: status must not take the index lock of a checkout someone is committing in.
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty}


@functools.cache
def harness_git_info() -> dict:
    """:func:`git_info` of the harness's own checkout, asked once per process (every stored run needs it)."""
    return git_info(HARNESS_ROOT)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Python's version and each of :data:`DISTRIBUTIONS`' (None where it is not installed)."""
    return {"python": platform.python_version(), **{name: _version(name) for name in DISTRIBUTIONS}}


def machine(device: str | None) -> dict:
    """Platform, CPU count, :func:`versions`, and ``device``: where the claims' runs were trained."""
    import torch  # imported here: the reports read provenance without needing torch at import time

    return {
        "platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
        **versions(), "device": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
