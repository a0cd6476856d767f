"""Fake CIFAR trees in the exact on-disk format of the official "python version" archives.

Protocol-2 pickles, bytes keys, uint8 (n, 3072) rows of R, G, B planes, as torchvision's layout
expects. Used by the fixtures in ``tests/conftest.py``, and by ``make test``'s dry run of the gpu
tier: ``python tests/fake_cifar.py DIR --per-batch 500`` writes ``DIR/cifar-10-batches-py``.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

PER_BATCH = 20  # images per fake CIFAR-10 batch
CIFAR10_TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR100_TRAIN, CIFAR100_TEST = 30, 10
ROW = 3 * 32 * 32


def write_pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def known_image() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three distinct 32x32 planes: R varies by row, G by column, B by both."""
    h, w = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return (h * 8).astype(np.uint8), (w * 8).astype(np.uint8), (255 - h - w).astype(np.uint8)


def file_row(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """One image as CIFAR stores it: the R plane row-major, then G, then B (3072 values)."""
    return np.concatenate([red.ravel(), green.ravel(), blue.ravel()])


def random_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, ROW), dtype=np.uint8)


def write_cifar10(tmp_path: Path, per_batch: int = PER_BATCH) -> dict:
    """A fake CIFAR-10 tree of ``per_batch`` images per file; returns the root and the rows and labels
    written per file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for b, name in enumerate(CIFAR10_TRAIN_FILES + ["test_batch"]):
        rows = random_rows(rng, per_batch)
        labels = [(b * per_batch + i) % 10 for i in range(per_batch)]
        if name in ("data_batch_1", "test_batch"):
            rows[0] = file_row(*known_image())
        written[name] = (rows, labels)
        write_pickle(folder / name, {
            b"batch_label": f"fake {name}".encode(),
            b"labels": labels,
            b"data": rows,
            b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)],
        })
    names = [f"class{k}".encode() for k in range(10)]
    write_pickle(folder / "batches.meta",
                 {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": ROW})
    return {"root": tmp_path, "folder": folder, "written": written}


def write_cifar100(tmp_path: Path) -> dict:
    """A fake CIFAR-100 tree; returns the root and the rows and labels written per file."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    written = {}
    for name, n in (("train", CIFAR100_TRAIN), ("test", CIFAR100_TEST)):
        rows = random_rows(rng, n)
        fine = [(37 * i + 99) % 100 for i in range(n)]  # covers both ends, 0 and 99
        written[name] = (rows, fine)
        write_pickle(folder / name, {
            b"filenames": [b"x.png"] * n,
            b"batch_label": name.encode(),
            b"fine_labels": fine,
            b"coarse_labels": [k // 5 for k in fine],
            b"data": rows,
        })
    write_pickle(folder / "meta", {
        b"fine_label_names": [f"fine{k}".encode() for k in range(100)],
        b"coarse_label_names": [f"coarse{k}".encode() for k in range(20)],
    })
    return {"root": tmp_path, "folder": folder, "written": written}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="write a fake CIFAR-10 folder (random images) for dry runs")
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-batch", type=int, default=PER_BATCH)
    args = parser.parse_args()
    write_cifar10(args.root, args.per_batch)
    print(f"fake CIFAR-10: {args.root / 'cifar-10-batches-py'} ({args.per_batch} images per batch)")
