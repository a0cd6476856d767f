"""Tests for harness.cifar: loading, validation and the restricted unpickler, on fake batches.

The fixtures write small batches in the exact format of the official "python version" archives
(protocol-2 pickles, bytes keys, uint8 (n, 3072) rows of R, G, B planes) under tmp_path.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_cifar import (
    CIFAR10_TRAIN_FILES,
    CIFAR100_TEST,
    CIFAR100_TRAIN,
    PER_BATCH,
    ROW,
    known_image,
    write_pickle,
)

from harness import cifar


def rewrite(folder: Path, name: str, **changes: object) -> None:
    """Reload one fake file with plain pickle (we wrote it), change keys, write it back."""
    obj = pickle.loads((folder / name).read_bytes(), encoding="bytes")
    for key, value in changes.items():
        if value is None:
            del obj[key.encode()]
        else:
            obj[key.encode()] = value
    write_pickle(folder / name, obj)

# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

def test_cifar10_shapes_dtypes_and_batch_order(cifar10_root):
    data = cifar.load_cifar(cifar10_root["root"], "cifar10")
    written = cifar10_root["written"]
    n_train = PER_BATCH * len(CIFAR10_TRAIN_FILES)

    assert data.train_x.shape == (n_train, 3, 32, 32)
    assert data.test_x.shape == (PER_BATCH, 3, 32, 32)
    assert data.train_x.dtype == data.test_x.dtype == torch.uint8
    assert data.train_y.shape == (n_train,)
    assert data.train_y.dtype == data.test_y.dtype == torch.int64
    # Batches 1..5 in order: image j of data_batch_b sits at (b - 1) * PER_BATCH + j, so the
    # tail of the training set (where the validation split is held out) is data_batch_5's tail.
    for b, name in enumerate(CIFAR10_TRAIN_FILES):
        rows, labels = written[name]
        got = data.train_x[b * PER_BATCH:(b + 1) * PER_BATCH].reshape(PER_BATCH, ROW)
        assert torch.equal(got, torch.from_numpy(rows)), name
        assert data.train_y[b * PER_BATCH:(b + 1) * PER_BATCH].tolist() == labels, name
    rows, labels = written["test_batch"]
    assert torch.equal(data.test_x.reshape(PER_BATCH, ROW), torch.from_numpy(rows))
    assert data.test_y.tolist() == labels

def test_pixel_layout_is_rgb_planes_row_major(cifar10_root):
    data = cifar.load_cifar(cifar10_root["root"])
    red, green, blue = (torch.from_numpy(plane) for plane in known_image())
    for image in (data.train_x[0], data.test_x[0]):
        assert torch.equal(image[0], red)  # R: value grows down the rows
        assert torch.equal(image[1], green)  # G: value grows along a row
        assert torch.equal(image[2], blue)
        assert image[0, 5, 0].item() == 5 * 8 and image[1, 0, 5].item() == 5 * 8

def test_cifar10_class_names_and_tensors_are_writable(cifar10_root):
    data = cifar.load_cifar(cifar10_root["root"])
    assert data.classes == tuple(f"class{k}" for k in range(10))
    data.train_x[0, 0, 0, 0] = 7  # fresh memory, not a read-only view of the unpickled bytes
    assert data.train_x[0, 0, 0, 0].item() == 7

def test_cifar100_uses_fine_labels_and_names(cifar100_root):
    data = cifar.load_cifar(cifar100_root["root"], "cifar100")
    train_rows, train_fine = cifar100_root["written"]["train"]
    test_rows, test_fine = cifar100_root["written"]["test"]
    assert data.train_x.shape == (CIFAR100_TRAIN, 3, 32, 32)
    assert data.test_x.shape == (CIFAR100_TEST, 3, 32, 32)
    assert torch.equal(data.train_x.reshape(CIFAR100_TRAIN, ROW), torch.from_numpy(train_rows))
    assert data.train_y.tolist() == train_fine
    assert data.test_y.tolist() == test_fine
    assert data.train_y.dtype == torch.int64
    assert data.classes == tuple(f"fine{k}" for k in range(100))

# ---------------------------------------------------------------------------------------------
# Locating the data
# ---------------------------------------------------------------------------------------------

def test_resolve_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(cifar.DATA_ROOT_ENV, raising=False)
    default = tmp_path / "home" / ".cache" / "ensemble-claims" / "data"
    assert cifar.resolve_data_root(None) == default
    monkeypatch.setenv(cifar.DATA_ROOT_ENV, "")  # empty means unset, not the working directory
    assert cifar.resolve_data_root(None) == default
    monkeypatch.setenv(cifar.DATA_ROOT_ENV, str(tmp_path / "from-env"))
    assert cifar.resolve_data_root(None) == tmp_path / "from-env"
    assert cifar.resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert cifar.resolve_data_root("~/x") == tmp_path / "home" / "x"

def test_load_cifar_reads_root_from_environment(cifar10_root, monkeypatch):
    monkeypatch.setenv(cifar.DATA_ROOT_ENV, str(cifar10_root["root"]))
    data = cifar.load_cifar()
    assert data.test_y.tolist() == cifar10_root["written"]["test_batch"][1]

def test_expected_folder(tmp_path):
    assert cifar.expected_folder(tmp_path) == tmp_path / "cifar-10-batches-py"
    assert cifar.expected_folder(tmp_path, "cifar100") == tmp_path / "cifar-100-python"

@pytest.mark.parametrize("call", [cifar.load_cifar, cifar.expected_folder])
def test_bad_which_lists_allowed_values(call, tmp_path):
    with pytest.raises(ValueError, match=r"which='cifar-10'.*'cifar10', 'cifar100'"):
        call(tmp_path, "cifar-10")

@pytest.mark.parametrize(("which", "folder", "title"), [
    ("cifar10", "cifar-10-batches-py", "CIFAR-10"),
    ("cifar100", "cifar-100-python", "CIFAR-100"),
])
def test_missing_folder_names_path_and_how_to_get_data(tmp_path, which, folder, title):
    with pytest.raises(FileNotFoundError) as info:
        cifar.load_cifar(tmp_path, which)
    message = str(info.value)
    assert str(tmp_path / folder) in message
    assert f'"{title} python version"' in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message
    assert "--data-root" in message and cifar.DATA_ROOT_ENV in message

def test_missing_folder_hints_when_root_is_the_folder_itself(cifar10_root):
    hint = re.escape(f"give its parent {cifar10_root['root']}")
    with pytest.raises(FileNotFoundError, match=hint):
        cifar.load_cifar(cifar10_root["folder"])

@pytest.mark.parametrize("name", ["data_batch_3", "test_batch", "batches.meta"])
def test_missing_file_is_named(cifar10_root, name):
    (cifar10_root["folder"] / name).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(cifar10_root["folder"] / name)) + ".*"
                       + fix_for(cifar10_root["root"])):
        cifar.load_cifar(cifar10_root["root"])

# ---------------------------------------------------------------------------------------------
# Malformed files
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "pattern"), [
    ({"data": np.zeros((PER_BATCH, 3000), np.uint8)},
     r"uint8 array of shape \(n, 3072\), got a uint8 array of shape \(20, 3000\)"),
    ({"data": np.zeros((PER_BATCH, 3, 32, 32), np.uint8)},
     r"shape \(n, 3072\), got a uint8 array of shape \(20, 3, 32, 32\)"),
    ({"data": np.zeros((PER_BATCH, ROW), np.float32)}, r"got a float32 array of shape"),
    ({"data": [0] * ROW}, r"got a list of 3072 items of type int"),
    ({"labels": None}, r"missing \[b'labels'\]"),
    ({"labels": [0] * (PER_BATCH - 1)}, r"expected b'labels' to be 20 integers.*shape \(19,\)"),
    ({"labels": [0.5] * PER_BATCH},
     r"expected b'labels' to be 20 integers \(one per image\), got float64"),
    ({"labels": [[0]] * (PER_BATCH - 1) + [[0, 1]]},
     r"to be 20 integers \(one per image\), got a list of 20 items of type list"),
    ({"labels": [True] * PER_BATCH}, r"to be 20 integers \(one per image\), got bool"),
    ({"labels": [3] * (PER_BATCH - 1) + [10]}, r"in \[0, 10\), got values in \[3, 10\]"),
    ({"labels": [-1] + [3] * (PER_BATCH - 1)}, r"in \[0, 10\), got values in \[-1, 3\]"),
])
def test_malformed_batch_names_file_expected_and_got(cifar10_root, changes, pattern):
    rewrite(cifar10_root["folder"], "data_batch_2", **changes)
    layout = re.escape(f"{cifar10_root['folder'] / 'data_batch_2'} is not a pickle of CIFAR-10's layout: ")
    with pytest.raises(cifar.CifarFileError, match=layout):
        cifar.load_cifar(cifar10_root["root"])
    with pytest.raises(cifar.CifarFileError, match=pattern):
        cifar.load_cifar(cifar10_root["root"])

def test_wrong_number_of_class_names(cifar10_root):
    rewrite(cifar10_root["folder"], "batches.meta", label_names=[b"a", b"b"])
    with pytest.raises(cifar.CifarFileError, match=r"batches\.meta is not a pickle of CIFAR-10's layout: "
                                                  r"expected b'label_names' to be a list of "
                                                  r"10 names \(bytes or str\), got a list of 2 items"):
        cifar.load_cifar(cifar10_root["root"])

def test_files_re_pickled_under_python_3_with_str_keys_and_names(cifar10_root):
    expected = cifar.load_cifar(cifar10_root["root"])
    for path in cifar10_root["folder"].iterdir():
        with path.open("rb") as f:
            obj = pickle.load(f, encoding="bytes")
        obj = {key.decode(): [n.decode() for n in value] if key == b"label_names" else value
               for key, value in obj.items()}
        write_pickle(path, obj)
    again = cifar.load_cifar(cifar10_root["root"])
    assert torch.equal(again.train_x, expected.train_x) and torch.equal(again.test_y, expected.test_y)
    assert again.classes == expected.classes


def test_cifar100_label_range_is_100(cifar100_root):
    rewrite(cifar100_root["folder"], "test", fine_labels=[100] * CIFAR100_TEST)
    with pytest.raises(cifar.CifarFileError, match=r"test is not a pickle of CIFAR-100's layout: "
                                                  r"expected b'fine_labels' in \[0, 100\)"):
        cifar.load_cifar(cifar100_root["root"], "cifar100")

def test_file_that_is_not_a_dict(cifar10_root):
    write_pickle(cifar10_root["folder"] / "test_batch", [1, 2, 3])
    with pytest.raises(cifar.CifarFileError, match=r"test_batch is not a pickle of CIFAR-10's layout: "
                                                  r"expected a dict, got a list"):
        cifar.load_cifar(cifar10_root["root"])

def fix_for(root: Path, archive: str = "cifar-10-python.tar.gz") -> str:
    """The remedy a damaged-file message must end with, as a regex."""
    return re.escape(f"Fix: re-extract {archive} (") + ".*" + re.escape(f") into {root}: tar -xzf {archive} -C {root}")


# Cut points of a fake batch (~93 kB): inside the header, the label list, the image array, and its last byte.
@pytest.mark.parametrize("keep", [0, 1, 100, 2_000, 50_000, -1], ids=lambda k: f"keep{k}")
def test_truncated_batch_is_one_error_naming_file_problem_and_fix(cifar10_root, keep):
    path = cifar10_root["folder"] / "data_batch_4"
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    size = len(data[:keep])
    with pytest.raises(cifar.CifarFileError) as info:
        cifar.load_cifar(cifar10_root["root"])
    message = str(info.value)
    assert re.match(re.escape(f"{path} is truncated (the pickle ends early: "), message), message
    assert f"the file has {size:,} bytes)" in message
    assert re.search(fix_for(cifar10_root["root"]) + "$", message), message
    # Raised on its own: no "During handling..." chain under it in a test's report.
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("content", [b"not a pickle at all", b"\x1f\x8b\x08\x00 gzip bytes"], ids=["text", "gzip"])
def test_bytes_that_are_no_pickle_say_so(cifar10_root, content):
    path = cifar10_root["folder"] / "test_batch"
    path.write_bytes(content)
    with pytest.raises(cifar.CifarFileError, match=re.escape(f"{path} is not a pickle (the unpickler says: ")
                       + ".*" + fix_for(cifar10_root["root"])):
        cifar.load_cifar(cifar10_root["root"])


def test_damaged_array_inside_a_complete_pickle_is_named(cifar10_root):
    # A corrupted dtype code: the pickle parses, but numpy's reconstruction fails (a TypeError).
    path = cifar10_root["folder"] / "data_batch_1"
    path.write_bytes(path.read_bytes().replace(b"u1", b"zz"))
    pattern = re.escape(f"{path} is damaged: unpickling it failed with TypeError: ") + ".*"
    pattern += fix_for(cifar10_root["root"])
    with pytest.raises(cifar.CifarFileError, match=pattern):
        cifar.load_cifar(cifar10_root["root"])


def test_cifar100_fix_names_its_archive(cifar100_root):
    path = cifar100_root["folder"] / "train"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(cifar.CifarFileError, match=r"train is truncated .*"
                       + fix_for(cifar100_root["root"], "cifar-100-python.tar.gz")):
        cifar.load_cifar(cifar100_root["root"], "cifar100")


def test_file_problems_lists_each_damaged_file_once(cifar10_root):
    folder = cifar10_root["folder"]
    assert cifar.file_problems(cifar10_root["root"]) == []
    for name in ("data_batch_2", "test_batch"):
        (folder / name).write_bytes((folder / name).read_bytes()[:3_000])
    rewrite(folder, "data_batch_5", labels=None)
    (folder / "data_batch_1").unlink()
    problems = cifar.file_problems(cifar10_root["root"])
    # In load_cifar's reading order, one message per file, each naming it.
    assert [p.split(" ")[0] for p in problems] == [
        "CIFAR", str(folder / "data_batch_2"), str(folder / "data_batch_5"), str(folder / "test_batch")]
    assert f"CIFAR file {folder / 'data_batch_1'} is missing" in problems[0]
    assert "truncated" in problems[1] and "missing [b'labels']" in problems[2] and "truncated" in problems[3]
    assert all(re.search(fix_for(cifar10_root["root"]), p) for p in problems), problems


def test_file_problems_of_an_absent_folder_is_the_missing_data_message(tmp_path):
    assert cifar.file_problems(tmp_path, "cifar100") == [cifar.missing_data_message(tmp_path, "cifar100")]
    message = cifar.missing_data_message(tmp_path)
    assert message.startswith(f"CIFAR-10 data not found: no folder {tmp_path / 'cifar-10-batches-py'}.")
    with pytest.raises(FileNotFoundError) as info:
        cifar.load_cifar(tmp_path)
    assert str(info.value) == message

# ---------------------------------------------------------------------------------------------
# Restricted unpickler
# ---------------------------------------------------------------------------------------------

class Exploit:
    """Pickles as a call to ``func(arg)``: what a tampered batch file would contain."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)

# Payloads that create <tmp>/pwned when unpickled, each with a pattern for the global the pickle
# names: protocol 2 writes builtins as Python 2's __builtin__, and os.system as posix.system.
PAYLOADS = {
    "os.system": (os.system, "touch '{marker}'", rf"{os.system.__module__}\.system"),
    "eval": (eval, "open({marker!r}, 'w').close()", r"(__builtin__|builtins)\.eval"),
}

def exploit(kind: str, marker: Path) -> Exploit:
    func, template, _ = PAYLOADS[kind]
    return Exploit(func, template.format(marker=str(marker)))

@pytest.mark.parametrize("kind", PAYLOADS)
def test_payload_control_runs_under_plain_pickle(tmp_path, kind):
    # Control: the payloads really do execute under an unrestricted unpickler.
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(exploit(kind, marker), protocol=2))
    assert marker.exists()

@pytest.mark.parametrize("kind", PAYLOADS)
def test_malicious_batch_is_refused_and_not_executed(cifar10_root, tmp_path, kind):
    marker = tmp_path / "pwned"
    path = cifar10_root["folder"] / "data_batch_1"
    write_pickle(path, {b"data": exploit(kind, marker), b"labels": [0] * PER_BATCH})
    pattern = re.escape(f"{path}: refusing to load global ") + PAYLOADS[kind][2]
    with pytest.raises(cifar.UnsafePickleError, match=pattern):
        cifar.load_cifar(cifar10_root["root"])
    assert not marker.exists()

def test_protocol5_array_is_refused_as_not_needed():
    # numpy pickles arrays under protocol 5 through _frombuffer; CIFAR's files are protocol 2.
    blob = pickle.dumps(np.zeros(3, np.uint8), protocol=5)
    with pytest.raises(cifar.UnsafePickleError, match=r"numpy\._?core\.numeric\._frombuffer"):
        cifar.restricted_load(io.BytesIO(blob))

def test_harmless_foreign_global_is_refused_too():
    blob = pickle.dumps({b"labels": collections.OrderedDict(a=1)}, protocol=2)
    with pytest.raises(cifar.UnsafePickleError, match=r"collections\.OrderedDict"):
        cifar.restricted_load(io.BytesIO(blob))

def test_unsafe_pickle_error_is_an_unpickling_error():
    assert issubclass(cifar.UnsafePickleError, pickle.UnpicklingError)

def test_codecs_encode_admits_only_latin1():
    # _codecs.encode("x", "rot13"): an admitted global called with a codec bytes never need.
    blob = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
    assert pickle.loads(blob) == "k"  # control: plain pickle performs the call
    with pytest.raises(cifar.UnsafePickleError, match=r"refusing _codecs\.encode\(str, 'rot13'"):
        cifar.restricted_load(io.BytesIO(blob))

@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4])
def test_restricted_load_reads_numpy_arrays_and_containers(protocol):
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 2, 3],
           b"name": "x", b"bytes": b"\x00\xff", b"pair": (1.5, None)}
    got = cifar.restricted_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)))
    assert got.keys() == obj.keys()
    np.testing.assert_array_equal(got[b"data"], obj[b"data"])
    assert got[b"data"].dtype == np.uint8
    assert [got[k] for k in (b"labels", b"name", b"bytes", b"pair")] == \
        [obj[k] for k in (b"labels", b"name", b"bytes", b"pair")]

def test_restricted_load_reads_python2_numpy_pickle():
    # What the official files hold: a Python-2 protocol-2 pickle naming numpy.core.multiarray,
    # with str (bytes under encoding="bytes") keys and raw data. Hand-written opcodes.
    blob = (
        b"\x80\x02}(U\x04data"
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        b"(K\x01K\x01K\x03\x86cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
        b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x03\x01\x02\xfftb"
        b"U\x06labels]K\x07au."
    )
    got = cifar.restricted_load(io.BytesIO(blob))
    assert got[b"labels"] == [7]
    np.testing.assert_array_equal(got[b"data"], np.array([[1, 2, 255]], dtype=np.uint8))
