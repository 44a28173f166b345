import importlib
import os
import pickle

import numpy as np
import pytest

from bnnflow.errors import BnnflowError
from bnnflow.model import cifar, data
from bnnflow.model.artifact import BnnModel, DenseLayer, InputSpec
from tests.model.cifar_files import batch_dict, py2_dumps, write_cifar_batches

TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
EXPECTED_FILES = ("data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, "
                  "test_batch (and optionally batches.meta)")


def test_pixels_land_channels_last(tmp_path):
    written = write_cifar_batches(tmp_path, n_per_batch=3, n_test=2)
    a = cifar.load_cifar10(tmp_path)
    raw = written["data_batch_2"][0]
    # Image 1 of the second batch is image 3 + 1 of the training set; pixel (r, c) of channel
    # ch is at ch * 1024 + r * 32 + c of its row, and at (r * 32 + c) * 3 + ch once flattened.
    r, c, ch = 5, 17, 2
    value = raw[1, ch * 1024 + r * 32 + c]
    assert a["train_images"][4, r, c, ch] == value
    assert a["train_images"][4].reshape(-1)[(r * 32 + c) * 3 + ch] == value
    rows = np.concatenate([written[name][0] for name in TRAIN])
    assert np.array_equal(a["train_images"],
                          rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64))
    assert np.array_equal(a["train_labels"], np.concatenate([written[n][1] for n in TRAIN]))
    assert np.array_equal(a["test_images"], cifar.channels_last(written["test_batch"][0]))
    assert np.array_equal(a["test_labels"], written["test_batch"][1])
    assert a["train_images"].dtype == np.float64 and a["train_labels"].dtype == np.int64


def test_read_batch_returns_uint8_images_and_int64_labels(tmp_path):
    written = write_cifar_batches(tmp_path, n_per_batch=2)
    images, labels = cifar.read_batch(tmp_path / "data_batch_1")
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    assert images.flags.c_contiguous
    assert np.array_equal(labels, written["data_batch_1"][1]) and labels.dtype == np.int64


@pytest.mark.parametrize("meta, classes", [
    (True, cifar.CIFAR10_CLASSES),
    (["a0", "b1", "c2", "d3", "e4", "f5", "g6", "h7", "i8", "j9"],
     ("a0", "b1", "c2", "d3", "e4", "f5", "g6", "h7", "i8", "j9")),
    (False, cifar.CIFAR10_CLASSES),
])
def test_class_names_come_from_batches_meta_or_default(tmp_path, meta, classes):
    write_cifar_batches(tmp_path, meta=meta)
    assert (tmp_path / "batches.meta").exists() == (meta is not False)
    assert cifar.load_cifar10(tmp_path)["classes"] == classes


def test_reads_the_archive_folder_inside_the_directory(tmp_path):
    written = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    assert cifar.find_cifar10_dir(tmp_path) == tmp_path / "cifar-10-batches-py"
    a = cifar.load_cifar10(tmp_path)
    assert np.array_equal(a["test_labels"], written["test_batch"][1])


def test_str_keys_and_a_python3_pickle_are_accepted(tmp_path):
    write_cifar_batches(tmp_path)
    rows = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    # Protocol 4 names numpy 2's numpy._core.multiarray and stores bytes natively.
    payload = pickle.dumps({"data": rows, "labels": [3, 9]}, protocol=4)
    (tmp_path / "test_batch").write_bytes(payload)
    images, labels = cifar.read_batch(tmp_path / "test_batch")
    assert np.array_equal(images, cifar.channels_last(rows)) and labels.tolist() == [3, 9]


def test_load_dataset_cifar10(tmp_path):
    written = write_cifar_batches(tmp_path, n_per_batch=4, n_test=6)
    ds = data.load_dataset("cifar10", data_dir=tmp_path)
    assert ds.name == "cifar10" and ds.shape == (32, 32, 3) and ds.scale == 255.0
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (6, 32, 32, 3)
    assert ds.x_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    assert np.array_equal(ds.y_test, written["test_batch"][1])
    assert ds.classes == cifar.CIFAR10_CLASSES
    assert ds.split == {"seed": 0, "test_fraction": 0.2, "n_train": 20, "n_test": 6,
                        "method": "standard"}


def test_test_split_for_a_cifar10_model(tmp_path):
    written = write_cifar_batches(tmp_path, n_test=5)
    model = BnnModel([DenseLayer("fc0", np.ones((10, 3072), np.uint8))],
                     InputSpec(width=3072, shape=(32, 32, 3)),
                     provenance={"dataset": "cifar10", "split_seed": 0, "test_fraction": 0.2,
                                 "data_dir": str(tmp_path)})
    x, y = data.test_split_for(model)
    assert x.shape == (5, 32, 32, 3) and np.array_equal(y, written["test_batch"][1])


# --- the directory ---

def test_without_data_dir_names_the_option_and_files():
    with pytest.raises(BnnflowError, match="data set 'cifar10' needs --data-dir") as e:
        data.load_dataset("cifar10")
    assert EXPECTED_FILES in str(e.value) and "cifar-10-batches-py" in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_directory(tmp_path):
    with pytest.raises(BnnflowError, match="CIFAR-10 directory .*nope does not exist") as e:
        data.load_dataset("cifar10", data_dir=tmp_path / "nope")
    assert EXPECTED_FILES in str(e.value)


@pytest.mark.parametrize("name", ["data_batch_1", "data_batch_4", "test_batch"])
def test_missing_batch_is_named(tmp_path, name):
    write_cifar_batches(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(BnnflowError, match=f"lacks {name}; it must hold") as e:
        cifar.load_cifar10(tmp_path)
    assert EXPECTED_FILES in str(e.value) and "\n" not in str(e.value)


def test_empty_archive_folder_is_reported_as_searched(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(BnnflowError, match="cifar-10-batches-py lacks data_batch_1"):
        cifar.load_cifar10(tmp_path)


# --- malformed batches ---

def _rows(n):
    return np.zeros((n, 3072), np.uint8)


@pytest.mark.parametrize("payload, message", [
    (b"hello, not a pickle", r"not a readable pickle or truncated \(UnpicklingError"),
    (py2_dumps(batch_dict(_rows(2), [1, 2]))[:200], "not a readable pickle or truncated"),
    (b"", r"not a readable pickle or truncated \(EOFError"),
    (py2_dumps([1, 2]), r"not a CIFAR-10 batch \(a pickled list, expected a dict"),
    (py2_dumps({b"pixels": _rows(2), b"labels": [1, 2]}),
     r"not a CIFAR-10 batch \(keys labels, pixels; expected data and labels\)$"),
    (pickle.dumps({"pixels": _rows(2), 7: [1, 2]}, protocol=4),
     r"not a CIFAR-10 batch \(keys 7, pixels; expected data and labels\)$"),
    (py2_dumps({}), r"not a CIFAR-10 batch \(keys none; expected data and labels\)$"),
    (py2_dumps({b"data": _rows(2), b"fine_labels": [1, 2], b"coarse_labels": [0, 0]}),
     "expected data and labels\\); it looks like CIFAR-100"),
    (py2_dumps(batch_dict(np.zeros((2, 1024), np.uint8), [1, 2])),
     r"CIFAR-10 data must be a uint8 array of shape \(n, 3072\), not \(2, 1024\) uint8;"),
    (py2_dumps(batch_dict(_rows(2), [1, 2]) | {b"data": np.zeros((2, 3072))}),
     r"not \(2, 3072\) float64;"),
    (py2_dumps(batch_dict(_rows(2), [1, 2]) | {b"data": np.full((2, 3072), 256, np.int16)}),
     r"not \(2, 3072\) int16;"),
    (py2_dumps(batch_dict(_rows(2), [1, 2]) | {b"data": [[0] * 3072] * 2}),
     r"data must be a uint8 array of shape \(n, 3072\), not list;"),
    (py2_dumps(batch_dict(_rows(3), [1, 2])), "3 images but 2 labels"),
    (py2_dumps(batch_dict(_rows(2), [1, 10])), r"CIFAR-10 labels must be 0..9, found 1..10$"),
    (py2_dumps(batch_dict(_rows(2), [-1, 3])), r"CIFAR-10 labels must be 0..9, found -1..3$"),
    (py2_dumps(batch_dict(_rows(2), [1, 2]) | {b"labels": [b"cat", b"dog"]}),
     "CIFAR-10 labels must be a list of integers 0..9, not list"),
])
def test_malformed_batch_is_a_one_line_error_naming_the_file(tmp_path, payload, message):
    write_cifar_batches(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(payload)
    with pytest.raises(BnnflowError, match=message) as e:
        data.load_dataset("cifar10", data_dir=tmp_path)
    assert str(e.value).startswith(str(tmp_path / "data_batch_3") + ": ")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("meta", [{b"label_names": [b"a", b"b"]}, {b"num_vis": 3072}, [1]])
def test_malformed_meta(tmp_path, meta):
    write_cifar_batches(tmp_path)
    (tmp_path / "batches.meta").write_bytes(py2_dumps(meta))
    with pytest.raises(BnnflowError, match=r"batches.meta: not a CIFAR-10 batches.meta "
                                           r"\(expected a dict whose label_names is a list of "
                                           r"10 names\); remove it to use the standard names$"):
        cifar.load_cifar10(tmp_path)


# --- the restricted unpickler ---

class _Exploit:
    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


# As Python 2 wrote the real files (protocol 2), and as Python 3 writes by default.
DUMPS = {"py2": py2_dumps, "protocol4": lambda obj: pickle.dumps(obj, protocol=4)}


@pytest.mark.parametrize("dumps", DUMPS.values(), ids=DUMPS.keys())
@pytest.mark.parametrize("target", ["data_batch_1", "test_batch", "batches.meta"])
def test_pickle_calling_os_system_is_refused_and_not_run(tmp_path, monkeypatch, dumps, target):
    write_cifar_batches(tmp_path)
    module = os.system.__module__  # posix (or nt): where pickle finds os.system
    payload = dumps({b"data": _Exploit(os.system, ("true",)), b"labels": [1]})
    (tmp_path / target).write_bytes(payload)
    # Had the unpickler resolved the global, it would have found and called this spy.
    calls = []
    monkeypatch.setattr(importlib.import_module(module), "system", calls.append)
    with pytest.raises(BnnflowError, match=rf"{target}: not a CIFAR-10 batch \(pickle refers "
                                           rf"to {module}\.system\); only the python-version"):
        cifar.load_cifar10(tmp_path)
    assert calls == []


@pytest.mark.parametrize("function, args, name", [
    (pickle.loads, (b".",), "_pickle.loads"),
    (eval, ("1 + 1",), "builtins.eval"),
    (getattr, ("x", "upper"), "builtins.getattr"),
    (np.load, ("x.npy",), "numpy.load"),
])
def test_only_numpy_array_reconstruction_is_allowed(tmp_path, function, args, name):
    (tmp_path / "f").write_bytes(pickle.dumps(_Exploit(function, args), protocol=4))
    with pytest.raises(BnnflowError, match=rf"pickle refers to {name}\)"):
        cifar.read_batch(tmp_path / "f")
