import gzip

import numpy as np
import pytest

from bnnflow.errors import BnnflowError
from bnnflow.model import data
from bnnflow.model.artifact import BnnModel, DenseLayer, InputSpec


def idx_bytes(array, type_code=0x08):
    array = np.asarray(array)
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist_dir(root, n_train=30, n_test=12, size=5, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        raw = idx_bytes(a)
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (root / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("name, shape, n, scale", [("digits", (8, 8), 1797, 16.0),
                                                   ("mnist5k", (28, 28), 5000, 255.0)])
def test_builtin_data_sets_have_expected_shapes(name, shape, n, scale):
    ds = data.load_dataset(name)
    assert ds.shape == shape and ds.scale == scale
    assert ds.x_train.shape[1:] == shape and ds.x_test.shape[1:] == shape
    assert len(ds.x_train) + len(ds.x_test) == n
    assert len(ds.y_train) == len(ds.x_train) and len(ds.y_test) == len(ds.x_test)
    assert ds.x_train.min() >= 0 and ds.x_train.max() == scale
    assert ds.classes == tuple(str(i) for i in range(10))
    assert ds.split["n_test"] == len(ds.y_test) and ds.split["method"] == "stratified"


def test_stratified_split_is_seeded_and_keeps_class_proportions():
    a = data.load_dataset("digits", split_seed=3, test_fraction=0.25)
    b = data.load_dataset("digits", split_seed=3, test_fraction=0.25)
    c = data.load_dataset("digits", split_seed=4, test_fraction=0.25)
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_test, c.x_test)
    counts = np.bincount(a.y_test, minlength=10)
    totals = counts + np.bincount(a.y_train, minlength=10)
    assert np.array_equal(counts, np.round(totals * 0.25).astype(int))


def test_stratified_split_is_a_partition():
    labels = np.array([0, 1, 1, 2, 2, 2, 0, 1, 2, 0] * 7)
    train, test = data.stratified_split(labels, 0.3, 11)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files_plain_and_gzip(tmp_path, gz):
    arrays = write_mnist_dir(tmp_path / "m", gz=gz)
    ds = data.load_dataset("mnist", data_dir=tmp_path / "m")
    assert ds.shape == (5, 5) and ds.scale == 255.0 and ds.split["method"] == "standard"
    assert np.array_equal(ds.x_train, arrays["train-images-idx3-ubyte"].astype(np.float64))
    assert np.array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"].astype(np.int64))
    assert ds.x_test.dtype == np.float64 and ds.y_train.dtype == np.int64


@pytest.mark.parametrize("type_code, dtype", [(0x08, np.uint8), (0x0C, np.int32),
                                              (0x0D, np.float32)])
def test_read_idx_types(tmp_path, type_code, dtype):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype) if dtype != np.uint8 else \
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "f").write_bytes(idx_bytes(a, type_code))
    assert np.array_equal(data.read_idx(tmp_path / "f"), a)


def expected_files_message():
    return ("train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")


def test_mnist_without_data_dir_names_the_option_and_files():
    with pytest.raises(BnnflowError, match="needs --data-dir") as e:
        data.load_dataset("mnist")
    assert expected_files_message() in str(e.value)
    assert "\n" not in str(e.value)


def test_mnist_missing_dir_names_the_expected_files(tmp_path):
    with pytest.raises(BnnflowError, match="does not exist") as e:
        data.load_dataset("mnist", data_dir=tmp_path / "nope")
    assert expected_files_message() in str(e.value)


def test_mnist_missing_file_names_it(tmp_path):
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(BnnflowError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]") as e:
        data.load_dataset("mnist", data_dir=tmp_path)
    assert expected_files_message() in str(e.value)


@pytest.mark.parametrize("corrupt, message", [
    (lambda b: b"\x01\x02" + b[2:], "bad magic number"),
    (lambda b: b[:-3], "malformed IDX file"),
    (lambda b: b[:6], "truncated header"),
    (lambda b: gzip.compress(b)[:20], "cannot read IDX file"),
])
def test_mnist_malformed_file_is_a_one_line_error(tmp_path, corrupt, message):
    write_mnist_dir(tmp_path)
    target = tmp_path / "train-images-idx3-ubyte"
    target.write_bytes(corrupt(target.read_bytes()))
    with pytest.raises(BnnflowError, match=message) as e:
        data.load_dataset("mnist", data_dir=tmp_path)
    assert "\n" not in str(e.value) and "train-images-idx3-ubyte" in str(e.value)


def test_mnist_label_count_mismatch(tmp_path):
    write_mnist_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(BnnflowError, match="train images must be .* and labels"):
        data.load_dataset("mnist", data_dir=tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "cifar"}, "unknown data set 'cifar'; choose one of digits, mnist5k, mnist, cifar10$"),
    ({"name": "digits", "test_fraction": 1.0}, "test fraction must be between 0 and 1"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(BnnflowError, match=message):
        data.load_dataset(**kwargs)


def test_test_split_for_rebuilds_the_recorded_split():
    ds = data.load_dataset("digits", split_seed=7, test_fraction=0.3)
    layer = DenseLayer("fc0", np.ones((10, 64), np.uint8))
    model = BnnModel([layer], InputSpec(width=64, shape=(8, 8)),
                     provenance={"dataset": "digits", "split_seed": 7, "test_fraction": 0.3,
                                 "data_dir": None})
    x, y = data.test_split_for(model)
    assert np.array_equal(x, ds.x_test) and np.array_equal(y, ds.y_test)


def test_test_split_for_unknown_provenance():
    model = BnnModel([DenseLayer("fc0", np.ones((2, 4), np.uint8))], InputSpec(width=4))
    with pytest.raises(BnnflowError, match="provenance names no known data set"):
        data.test_split_for(model)
