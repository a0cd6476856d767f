"""CIFAR-10 / CIFAR-100 from a local folder in torchvision's layout, without torchvision.

Nothing is downloaded: the data must already sit under a data root, laid out as the official
"python version" archives extract (the same layout torchvision uses)::

    <root>/cifar-10-batches-py/{data_batch_1, ..., data_batch_5, test_batch, batches.meta}
    <root>/cifar-100-python/{train, test, meta}

The root is the ``root`` argument, else ``$ENSEMBLE_CLAIMS_DATA_ROOT``, else
``~/.cache/ensemble-claims/data`` (see :func:`resolve_data_root`).

The batch files are Python-2 pickles. Plain :func:`pickle.load` would run whatever callable a
tampered file names, so they are read with :func:`restricted_load`, an unpickler that admits only
the few numpy globals an array needs and refuses everything else with :class:`UnsafePickleError`
before anything is called. Every file is then checked (keys, shapes, dtypes, label range). A damaged
file (truncated, not a pickle, or a pickle of another layout) raises one :class:`CifarFileError`
that names the file, what is wrong and the fix: extract the archive again. :func:`file_problems`
reads every file and gives one such line per damaged file, for a check before a session starts.

Examples
--------
>>> from harness import cifar
>>> data = cifar.load_cifar("~/data", "cifar10")  # doctest: +SKIP
>>> data.train_x.shape, data.train_y.dtype, data.classes[:2]  # doctest: +SKIP
(torch.Size([50000, 3, 32, 32]), torch.int64, ('airplane', 'automobile'))
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

__all__ = [
    "DATA_ROOT_ENV",
    "CifarArrays",
    "CifarFileError",
    "UnsafePickleError",
    "expected_folder",
    "file_problems",
    "load_cifar",
    "missing_data_message",
    "resolve_data_root",
    "restricted_load",
]

DATA_ROOT_ENV = "ENSEMBLE_CLAIMS_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("~/.cache/ensemble-claims/data")
DOWNLOAD_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

# One image row in the files: three 32x32 planes (R, then G, then B), each row-major.
_CHANNELS, _SIZE = 3, 32
_ROW_LENGTH = _CHANNELS * _SIZE * _SIZE


@dataclass(frozen=True)
class _Layout:
    """Where one dataset's files live and which pickle keys hold what."""

    title: str  # as the download page names the archive, e.g. "CIFAR-10"
    archive: str  # the "python version" archive, which extracts into ``folder``
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int


_LAYOUTS = {
    "cifar10": _Layout(
        title="CIFAR-10",
        archive="cifar-10-python.tar.gz",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_file="test_batch",
        meta_file="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
        num_classes=10,
    ),
    "cifar100": _Layout(
        title="CIFAR-100",
        archive="cifar-100-python.tar.gz",
        folder="cifar-100-python",
        train_files=("train",),
        test_file="test",
        meta_file="meta",
        label_key=b"fine_labels",
        names_key=b"fine_label_names",
        num_classes=100,
    ),
}


# ---------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global that the restricted unpickler does not admit."""


class CifarFileError(ValueError):
    """A CIFAR file is damaged: truncated, not a pickle, or a pickle of another layout.

    The message is one paragraph: the file, what is wrong, and the fix (extract the archive
    again). It is raised without a chained cause, so that a session whose every test reads the
    file shows that paragraph, not the unpickler's traceback under it.
    """


def _latin1_encode(text: object, encoding: object = "utf-8", errors: object = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that performs only the call pickles of bytes make.

    Python 3 pickles a ``bytes`` object under protocols < 3 as ``_codecs.encode(str, "latin1")``.
    The real function would look up any codec the file names, so only that exact call is allowed.
    """
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise UnsafePickleError(
            f"refusing _codecs.encode({type(text).__name__}, {encoding!r}, {errors!r}): only "
            "_codecs.encode(str, 'latin1'), which encodes bytes in protocol-2 pickles, is admitted"
        )
    return text.encode("latin1")


# numpy's array pickles call _reconstruct (named after the numpy that wrote the file: numpy.core
# before 2.0, numpy._core since), then ndarray and dtype. Take the function from ndarray's own
# reduce so neither module path has to be imported (numpy.core is deprecated in numpy 2).
_reconstruct = np.empty(0).__reduce__()[0]
_ADMITTED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose only globals are those in ``_ADMITTED``.

    Every way a pickle can reach a callable (GLOBAL, STACK_GLOBAL, INST, OBJ, the extension
    registry) goes through :meth:`find_class`, so refusing there means nothing else is called.
    Dicts, lists, tuples, bytes, str and numbers have their own opcodes and need no global.
    """

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in _ADMITTED)
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: this unpickler admits only numpy "
                f"arrays and plain containers (allowed globals: {allowed})"
            ) from None


def restricted_load(file: BinaryIO) -> object:
    """Unpickle one object from ``file``, admitting only numpy arrays and plain containers.

    Parameters
    ----------
    file : binary file object
        Open for reading, positioned at the start of a pickle written by Python 2 or 3 with
        protocol 0 to 4 (numpy writes arrays under protocol 5 through ``_frombuffer``, which is
        not admitted: the CIFAR files use protocol 2).

    Returns
    -------
    object
        The unpickled object. Python-2 ``str`` values come back as ``bytes``
        (``encoding="bytes"``), as the CIFAR files expect.

    Raises
    ------
    UnsafePickleError
        If the pickle references any global other than numpy's ``_reconstruct`` (under
        ``numpy.core.multiarray`` or ``numpy._core.multiarray``), ``numpy.ndarray``,
        ``numpy.dtype`` or ``_codecs.encode(str, "latin1")``. The message names the global;
        it is never imported or called.
    pickle.UnpicklingError, EOFError
        If the stream is not a complete pickle.
    """
    return _RestrictedUnpickler(file, encoding="bytes").load()


# ---------------------------------------------------------------------------------------------
# Locating the data
# ---------------------------------------------------------------------------------------------


def _layout(which: str) -> _Layout:
    if which not in _LAYOUTS:
        raise ValueError(f"which={which!r} is invalid: expected one of {tuple(_LAYOUTS)}")
    return _LAYOUTS[which]


def resolve_data_root(root: str | os.PathLike | None) -> Path:
    """The data root: ``root`` if given, else ``$ENSEMBLE_CLAIMS_DATA_ROOT``, else the default.

    Parameters
    ----------
    root : str, os.PathLike or None
        An explicit root (e.g. from ``--data-root``); wins over the environment.

    Returns
    -------
    Path
        ``root``; else the environment variable :data:`DATA_ROOT_ENV` if set and non-empty;
        else ``~/.cache/ensemble-claims/data``. ``~`` is expanded; the path need not exist.
    """
    if root is None:
        # An empty variable (``VAR= pytest ...``) means "unset", not "the current directory".
        root = os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(root).expanduser()


def expected_folder(root: str | os.PathLike | None, which: str = "cifar10") -> Path:
    """The folder :func:`load_cifar` reads for ``which`` under ``root``.

    Parameters
    ----------
    root : str, os.PathLike or None
        Data root, resolved by :func:`resolve_data_root`.
    which : {"cifar10", "cifar100"}

    Returns
    -------
    Path
        ``<root>/cifar-10-batches-py`` or ``<root>/cifar-100-python``.

    Raises
    ------
    ValueError
        If ``which`` is not one of the allowed values.
    """
    return resolve_data_root(root) / _layout(which).folder


def missing_data_message(root: str | os.PathLike | None, which: str = "cifar10") -> str:
    """What to say when ``which``'s folder is absent under ``root``: the folder and how to get the data.

    Parameters
    ----------
    root : str, os.PathLike or None
        Data root, resolved by :func:`resolve_data_root`.
    which : {"cifar10", "cifar100"}

    Returns
    -------
    str
        One paragraph naming the folder looked in, the download page and the options that point
        at the data (the text :func:`load_cifar`'s FileNotFoundError carries).
    """
    layout = _layout(which)
    data_root = resolve_data_root(root)
    return _missing_folder_message(data_root, data_root / layout.folder, layout)


def _missing_folder_message(root: Path, folder: Path, layout: _Layout) -> str:
    message = (
        f"{layout.title} data not found: no folder {folder}. Nothing is downloaded at run time. "
        f'To provide the data, download "{layout.title} python version" from {DOWNLOAD_URL} '
        f"and extract it in {root}, or point --data-root / ${DATA_ROOT_ENV} at the folder that "
        f"contains {layout.folder}."
    )
    if root.name == layout.folder:
        # The commonest mistake: pointing at the batches folder itself instead of its parent.
        message += f" ({root} looks like that folder itself: give its parent {root.parent}.)"
    return message


# ---------------------------------------------------------------------------------------------
# Reading and checking the files
# ---------------------------------------------------------------------------------------------


def _describe(value: object) -> str:
    """A short account of what came, for error messages."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, list):
        kinds = sorted({type(item).__name__ for item in value})
        return f"a list of {len(value)} items of type {', '.join(kinds) or '-'}"
    return f"a {type(value).__name__}"


def _fix(path: Path, layout: _Layout) -> str:
    """The remedy for a damaged or missing file: extract the archive again over its folder."""
    root = path.parent.parent
    return (f"Fix: re-extract {layout.archive} (\"{layout.title} python version\", {DOWNLOAD_URL}) into "
            f"{root}: tar -xzf {layout.archive} -C {root}")


def _damaged(path: Path, layout: _Layout, what: str) -> CifarFileError:
    """One :class:`CifarFileError` for ``path``: the file, ``what`` is wrong, and the fix."""
    return CifarFileError(f"{path} {what}. {_fix(path, layout)}")


def _layout_error(path: Path, layout: _Layout, detail: str) -> CifarFileError:
    return _damaged(path, layout, f"is not a pickle of {layout.title}'s layout: {detail}")


def _read_dict(path: Path, layout: _Layout, required: tuple[bytes, ...]) -> dict:
    """Unpickle ``path`` restrictedly and check that it is a dict holding ``required`` keys."""
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR file {path} is missing; the folder {path.parent} is incomplete. "
                                f"{_fix(path, layout)}")
    with path.open("rb") as file:
        try:
            obj = restricted_load(file)
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{path}: {err}") from None
        except (pickle.UnpicklingError, EOFError) as err:
            # A stream that ends early is a cut download or extraction; any other unpickling
            # error means the bytes are not a pickle at all (e.g. the .tar.gz itself).
            ended = isinstance(err, EOFError) or "truncated" in str(err)
            what = "is truncated (the pickle ends early" if ended else "is not a pickle (the unpickler says"
            raise _damaged(path, layout, f"{what}: {err}; the file has {path.stat().st_size:,} bytes)") from None
        except Exception as err:  # noqa: BLE001 - damaged bytes can fail inside numpy's reconstruction in any way
            raise _damaged(path, layout, f"is damaged: unpickling it failed with {type(err).__name__}: {err}") from None
    if not isinstance(obj, dict):
        raise _layout_error(path, layout, f"expected a dict, got {_describe(obj)}")
    # Files re-pickled under Python 3 have str keys: read them as the originals' bytes keys.
    obj = {key.encode("utf-8") if isinstance(key, str) else key: value for key, value in obj.items()}
    missing = [key for key in required if key not in obj]
    if missing:
        raise _layout_error(path, layout, f"expected keys {sorted(required)}, missing {sorted(missing)} "
                                          f"(keys present: {sorted(obj, key=repr)})")
    return obj


def _read_batch(path: Path, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as ``(images (n, 3072) uint8, labels (n,) int64)``, checked."""
    batch = _read_dict(path, layout, (b"data", layout.label_key))
    data = batch[b"data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8
            and data.ndim == 2 and data.shape[1] == _ROW_LENGTH):
        raise _layout_error(path, layout, f"expected b'data' to be a uint8 array of shape (n, {_ROW_LENGTH}), "
                                          f"got {_describe(data)}")

    expected = f"expected {layout.label_key!r} to be {len(data)} integers (one per image)"
    try:
        labels = np.asarray(batch[layout.label_key])
    except ValueError:  # ragged nesting, which numpy refuses to make an array of
        raise _layout_error(path, layout, f"{expected}, got {_describe(batch[layout.label_key])}") from None
    # kind "iu": integers only, so bools, floats and objects are refused rather than cast.
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise _layout_error(path, layout, f"{expected}, got {labels.dtype} values of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise _layout_error(path, layout, f"expected {layout.label_key!r} in [0, {layout.num_classes}), "
                                          f"got values in [{labels.min()}, {labels.max()}]")
    return data, labels.astype(np.int64)


def _read_class_names(path: Path, layout: _Layout) -> tuple[str, ...]:
    names = _read_dict(path, layout, (layout.names_key,))[layout.names_key]
    if not (isinstance(names, list) and len(names) == layout.num_classes
            and all(isinstance(n, (bytes, str)) for n in names)):
        raise _layout_error(path, layout, f"expected {layout.names_key!r} to be a list of {layout.num_classes} "
                                          f"names (bytes or str), got {_describe(names)}")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)


def _stack(batches: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    # concatenate copies even a single batch, so the tensors own fresh, writable memory.
    images = np.concatenate([data for data, _ in batches]).reshape(-1, _CHANNELS, _SIZE, _SIZE)
    labels = np.concatenate([labels for _, labels in batches])
    return torch.from_numpy(images), torch.from_numpy(labels)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


# eq=False: == on tensor fields is elementwise, so a generated __eq__ would raise; use identity.
@dataclass(frozen=True, eq=False)
class CifarArrays:
    """The full CIFAR train and test sets, as stored (no split, no normalisation).

    Attributes
    ----------
    train_x : torch.Tensor, uint8, shape (N_train, 3, 32, 32)
        Channels R, G, B; rows top to bottom. Batches in file order (``data_batch_1`` ..
        ``data_batch_5`` for CIFAR-10), so the last 500 images are the end of ``data_batch_5``,
        where the official code holds out its validation split.
    train_y : torch.Tensor, int64, shape (N_train,)
        Class indices in ``[0, len(classes))`` (CIFAR-100: the fine labels).
    test_x : torch.Tensor, uint8, shape (N_test, 3, 32, 32)
    test_y : torch.Tensor, int64, shape (N_test,)
    classes : tuple of str, length 10 or 100
        Class names; ``classes[k]`` names label ``k``.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]


def load_cifar(root: str | os.PathLike | None = None, which: str = "cifar10") -> CifarArrays:
    """Load CIFAR-10 or CIFAR-100 from ``<root>/<folder>`` with the restricted unpickler.

    Parameters
    ----------
    root : str, os.PathLike or None
        Data root, resolved by :func:`resolve_data_root` (argument, then
        ``$ENSEMBLE_CLAIMS_DATA_ROOT``, then ``~/.cache/ensemble-claims/data``).
    which : {"cifar10", "cifar100"}

    Returns
    -------
    CifarArrays
        uint8 images of shape (N, 3, 32, 32) and int64 labels of shape (N,) for train and test,
        and the class names (CIFAR-10: 50,000 / 10,000 images; CIFAR-100: 50,000 / 10,000).

    Raises
    ------
    ValueError
        If ``which`` is not allowed.
    CifarFileError
        A subclass of ValueError: if a file is truncated or is not a pickle, or its keys, shapes,
        dtypes or label values are not what CIFAR's format prescribes. The message names the
        file, what was expected and what came, and how to restore it.
    FileNotFoundError
        If the dataset folder is missing (the message names it and says how to get the data),
        or one of its files is.
    UnsafePickleError
        If a file references a global other than numpy's array machinery; nothing is executed.
    """
    layout = _layout(which)
    data_root = resolve_data_root(root)
    folder = data_root / layout.folder
    if not folder.is_dir():
        raise FileNotFoundError(_missing_folder_message(data_root, folder, layout))

    classes = _read_class_names(folder / layout.meta_file, layout)
    train = [_read_batch(folder / name, layout) for name in layout.train_files]
    test = [_read_batch(folder / layout.test_file, layout)]
    train_x, train_y = _stack(train)
    test_x, test_y = _stack(test)
    return CifarArrays(train_x, train_y, test_x, test_y, classes)


def file_problems(root: str | os.PathLike | None = None, which: str = "cifar10") -> list[str]:
    """Read every file of ``which`` under ``root`` and say what is wrong with each damaged one.

    Parameters
    ----------
    root : str, os.PathLike or None
        Data root, resolved by :func:`resolve_data_root`.
    which : {"cifar10", "cifar100"}

    Returns
    -------
    list of str
        One message per missing, damaged or unsafe file, in the order :func:`load_cifar` reads
        them (each names the file, what is wrong and the fix); [] when every file loads. A
        missing folder is one message (:func:`missing_data_message`).

    Raises
    ------
    ValueError
        If ``which`` is not one of the allowed values.
    """
    layout = _layout(which)
    folder = expected_folder(root, which)
    if not folder.is_dir():
        return [missing_data_message(root, which)]
    problems = []
    # Unlike load_cifar, go on past a bad file: a user re-extracting wants the whole list at once.
    for name, read in [(layout.meta_file, _read_class_names)] + [(n, _read_batch) for n in layout.train_files
                                                                 + (layout.test_file,)]:
        try:
            read(folder / name, layout)
        except (CifarFileError, FileNotFoundError, UnsafePickleError) as err:
            problems.append(str(err))
    return problems
