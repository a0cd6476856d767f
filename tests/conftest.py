"""Fixtures shared by the harness's unit tests, and the hypothesis profiles."""

import os
from pathlib import Path

import pytest
from fake_cifar import write_cifar10, write_cifar100
from hypothesis import settings

# "ci" (the default) is derandomized: a red test is red again on the next run. "dev" explores
# new examples every run; select it with HYPOTHESIS_PROFILE=dev.
settings.register_profile("ci", derandomize=True, max_examples=60, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def cifar10_root(tmp_path: Path) -> dict:
    """A fake CIFAR-10 tree under tmp_path: {"root", "folder", "written": {file: (rows, labels)}}."""
    return write_cifar10(tmp_path)


@pytest.fixture
def cifar100_root(tmp_path: Path) -> dict:
    """A fake CIFAR-100 tree under tmp_path, as :func:`cifar10_root`."""
    return write_cifar100(tmp_path)
