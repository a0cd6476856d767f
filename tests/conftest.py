"""Fixtures shared by the harness's unit tests."""

from pathlib import Path

import pytest
from fake_cifar import write_cifar10, write_cifar100


@pytest.fixture
def cifar10_root(tmp_path: Path) -> dict:
    """A fake CIFAR-10 tree under tmp_path: {"root", "folder", "written": {file: (rows, labels)}}."""
    return write_cifar10(tmp_path)


@pytest.fixture
def cifar100_root(tmp_path: Path) -> dict:
    """A fake CIFAR-100 tree under tmp_path, as :func:`cifar10_root`."""
    return write_cifar100(tmp_path)
