"""Plug-in points: your own model factory and data loader, named in a ModelSpec or DatasetSpec.

A factory or loader function is named ``"package.module:function"`` (importable from the
current directory or the Python path). A data folder holds ``train.npz`` and ``test.npz``, each with
arrays ``x`` (N, C, H, W) and ``y`` (N,). Everything they return is checked here, with errors that
say what to fix; :class:`harness.settings.Setting` adds the setting's name.

Examples
--------
>>> from harness import plugins
>>> plugins.is_reference("examples.my_models:residual_cnn"), plugins.is_reference("data/my-arrays")
(True, False)
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
NPZ_FILES = ("train.npz", "test.npz")


def is_reference(text: str) -> bool:
    """Whether ``text`` reads as ``"package.module:function"`` (else a folder path)."""
    return bool(_REFERENCE.match(text))


def resolve(reference: str, what: str) -> Callable:
    """The function ``"package.module:function"`` names.

    Raises
    ------
    ValueError
        When the text is not of that form, the module does not import (with its error), it has
        no such attribute, or the attribute is not callable.
    """
    if not is_reference(reference):
        raise ValueError(f"{what}={reference!r} is invalid: expected 'package.module:function'")
    module_name, name = reference.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time error of the user's module is the answer
        raise ValueError(f"{what}={reference!r} does not import: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ValueError(f"{what}={reference!r}: module {module_name!r} has no function {name!r}")
    return fn


@functools.lru_cache(maxsize=64)
def source_digest(reference: str) -> str:
    """sha256 (16 hex digits) of the source of the module ``reference`` lives in.

    Part of a factory setting's cache key: edit the model's code and its old runs are not reused.
    """
    fn = resolve(reference, "ModelSpec.factory")
    try:
        text = inspect.getsource(inspect.getmodule(fn))
    except (OSError, TypeError):  # no source (a compiled module): the name alone identifies it
        text = reference
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_model(reference: str, kwargs: dict, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Call the factory ``reference(input_shape, num_classes, **kwargs)`` and check its model.

    Returns
    -------
    nn.Module
        In train mode, float32, on the CPU.

    Raises
    ------
    ValueError
        When the factory does not import or raises, returns something other than an
        ``nn.Module``, or maps a batch of two inputs to anything but logits of shape (2, num_classes).
    """
    fn = resolve(reference, "ModelSpec.factory")
    try:
        model = fn(input_shape, num_classes, **kwargs)
    except Exception as exc:
        raise ValueError(f"ModelSpec.factory={reference!r} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ValueError(f"ModelSpec.factory={reference!r} returned a {type(model).__name__}: expected a "
                         f"torch.nn.Module")
    model = model.float().train()
    # Eval mode: the check consumes no random numbers (dropout) and moves no BatchNorm statistics.
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    except Exception as exc:
        raise ValueError(f"ModelSpec.factory={reference!r}: its model fails on a batch of shape "
                         f"{(2, *input_shape)}: {type(exc).__name__}: {exc}") from exc
    finally:
        model.train()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"ModelSpec.factory={reference!r}: its model maps a batch of shape {(2, *input_shape)} to "
                         f"{got}: expected logits of shape (2, {num_classes}) = (N, classes)")
    return model


def _npz_folder(loader: str) -> tuple:
    folder = Path(loader)
    missing = [name for name in NPZ_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"DatasetSpec.loader={loader!r}: expected a 'package.module:function' or a folder "
                         f"holding {' and '.join(NPZ_FILES)}; missing {', '.join(str(folder / m) for m in missing)}")
    arrays = []
    for name in NPZ_FILES:
        with np.load(folder / name) as npz:
            absent = [key for key in ("x", "y") if key not in npz.files]
            if absent:
                raise ValueError(f"DatasetSpec.loader={loader!r}: {folder / name} has arrays {npz.files}, "
                                 f"expected 'x' and 'y'")
            arrays += [npz["x"], npz["y"]]
    return tuple(arrays)


def _as_tensor(value: object, what: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise ValueError(f"{what} is an object array: expected numbers")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    raise ValueError(f"{what} is a {type(value).__name__}: expected a torch.Tensor or numpy array")


def _check_arrays(loader: str, arrays: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    where = f"DatasetSpec.loader={loader!r}"
    if not isinstance(arrays, (tuple, list)) or len(arrays) != 4:
        raise ValueError(f"{where} returned a {type(arrays).__name__}: expected (train_x, train_y, test_x, test_y)")
    names = ("train_x", "train_y", "test_x", "test_y")
    train_x, train_y, test_x, test_y = (_as_tensor(a, f"{where}: {n}") for a, n in zip(arrays, names, strict=True))
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.ndim != 4 or len(x) == 0:
            raise ValueError(f"{where}: {name}_x has shape {tuple(x.shape)}: expected images (N, C, H, W), N >= 1")
        if not (x.is_floating_point() or x.dtype == torch.uint8):
            raise ValueError(f"{where}: {name}_x has dtype {x.dtype}: expected floats (or uint8 pixels)")
        if y.shape != (len(x),):
            raise ValueError(f"{where}: {name}_y has shape {tuple(y.shape)}: expected ({len(x)},), one label per "
                             f"{name} image")
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise ValueError(f"{where}: {name}_y has dtype {y.dtype}: expected integer class labels")
        if len(y) and y.min().item() < 0:
            raise ValueError(f"{where}: {name}_y holds the label {y.min().item()}: expected labels 0, 1, ..., C-1")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(f"{where}: train_x images are {tuple(train_x.shape[1:])}, test_x images "
                         f"{tuple(test_x.shape[1:])}: expected one shape")
    train_x = train_x.float() / 255.0 if train_x.dtype == torch.uint8 else train_x.float()
    test_x = test_x.float() / 255.0 if test_x.dtype == torch.uint8 else test_x.float()
    for name, x in (("train_x", train_x), ("test_x", test_x)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{where}: {name} holds {int((~torch.isfinite(x)).sum())} NaN or infinite values")
    train_y, test_y = train_y.long(), test_y.long()
    classes = int(train_y.max().item()) + 1
    if len(train_y.unique()) < 2:
        raise ValueError(f"{where}: train_y holds {len(train_y.unique())} class: expected at least two")
    if test_y.max().item() >= classes:
        raise ValueError(f"{where}: test_y holds the label {test_y.max().item()}, but train_y's labels are 0..{classes - 1}: "
                         f"expected test labels the training data has")
    return train_x.contiguous(), train_y, test_x.contiguous(), test_y


@functools.lru_cache(maxsize=4)
def load_arrays(loader: str, kwargs: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The checked arrays of a loader: train_x (N, C, H, W) float32, train_y (N,) int64, test_x, test_y.

    Cached per process (every run and claim reuses them). uint8 images are scaled to [0, 1].

    Raises
    ------
    ValueError
        For a loader that does not import or raises, a folder without the two files, arrays of the
        wrong shapes or types, NaN or infinite values, negative labels, fewer than two training
        classes, or test labels the training data lacks.
    """
    if is_reference(loader):
        fn = resolve(loader, "DatasetSpec.loader")
        try:
            arrays = fn(**dict(kwargs))
        except Exception as exc:
            raise ValueError(f"DatasetSpec.loader={loader!r} raised {type(exc).__name__}: {exc}") from exc
    else:
        if kwargs:
            raise ValueError(f"DatasetSpec.loader_kwargs={dict(kwargs)!r}: a folder loader takes no arguments")
        arrays = _npz_folder(loader)
    return _check_arrays(loader, arrays)


@functools.lru_cache(maxsize=64)
def fingerprint(loader: str, kwargs: tuple) -> str:
    """sha256 (16 hex digits) of the loaded arrays' dtypes, shapes and bytes: changed data, new key."""
    digest = hashlib.sha256()
    for t in load_arrays(loader, kwargs):
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


def loaded_shape(spec) -> tuple[tuple[int, ...], int]:
    """(input shape (C, H, W), classes) of a loader's data (:class:`harness.specs.DatasetSpec`)."""
    train_x, train_y, _, _ = load_arrays(spec.loader, spec.loader_kwargs)
    return tuple(train_x.shape[1:]), int(train_y.max().item()) + 1
