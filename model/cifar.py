"""CIFAR-10 read from a user-supplied directory of the standard "python version" batches.

The directory holds the contents of ``cifar-10-python.tar.gz`` (or that archive's folder
``cifar-10-batches-py``):

* ``data_batch_1`` .. ``data_batch_5``: the 50000 training images, 10000 per file;
* ``test_batch``: the 10000 test images;
* ``batches.meta`` (optional): the class names.

Each batch is a pickle (written by Python 2) of a dict with keys ``data``, a uint8 array of shape
``(n, 3072)`` holding for each image 1024 red, then 1024 green, then 1024 blue values, each plane
32x32 row-major, and ``labels``, a list of class indices 0..9. Keys may be bytes (as in the real
files) or str.

The files are user input, and unpickling can run arbitrary code, so they are read with a
restricted unpickler that resolves only the numpy names an array needs (:data:`ALLOWED_GLOBALS`)
and refuses every other global with a :class:`~bnnflow.errors.BnnflowError`.

Images are returned channels-last, ``(n, 32, 32, 3)``: element ``(r, c, ch)`` of an image,
flattened row-major, is at index ``(r * 32 + c) * 3 + ch``. This module needs numpy only.
"""

import pickle
from pathlib import Path

import numpy as np

from ..errors import BnnflowError

__all__ = ["ALLOWED_GLOBALS", "CIFAR10_CLASSES", "CIFAR10_FILES", "CIFAR10_META", "CIFAR10_SUBDIR",
           "channels_last", "find_cifar10_dir", "load_cifar10", "read_batch", "read_meta"]

#: The batch files, training first; all are required.
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                 "test_batch")

#: The optional file of class names (key ``label_names``).
CIFAR10_META = "batches.meta"

#: The folder ``cifar-10-python.tar.gz`` extracts to; searched if the files are not directly in
#: the given directory.
CIFAR10_SUBDIR = "cifar-10-batches-py"

#: Class names used when there is no ``batches.meta`` (the names it holds in the real data set).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")

#: The globals a batch pickle may refer to: numpy's array and dtype reconstruction, under the
#: module name of numpy 1 (the real files) and numpy 2.
ALLOWED_GLOBALS = frozenset({("numpy.core.multiarray", "_reconstruct"),
                             ("numpy._core.multiarray", "_reconstruct"),
                             ("numpy", "ndarray"), ("numpy", "dtype")})

_EXPECTED = (", ".join(CIFAR10_FILES) + f" (and optionally {CIFAR10_META}), the contents of "
             f"cifar-10-python.tar.gz, directly or in its folder {CIFAR10_SUBDIR}")

# The reconstruction function itself, taken from numpy's own reduction of an array, so that
# neither module name is imported: numpy.core warns on access in numpy 2.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_RESOLVED = {"_reconstruct": _RECONSTRUCT, "ndarray": np.ndarray, "dtype": np.dtype}

_SIDE = 32
_CHANNELS = 3
_PIXELS = _SIDE * _SIDE * _CHANNELS


class _Refused(Exception):
    """A global outside :data:`ALLOWED_GLOBALS`, named ``module.name``."""


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` and refuses any other global."""

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise _Refused(f"{module}.{name}")
        return _RESOLVED[name]


def _one_line(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _unpickle(path):
    """The object pickled in ``path``, loaded by the restricted unpickler with bytes strings."""
    try:
        with open(path, "rb") as f:
            return _BatchUnpickler(f, encoding="bytes").load()
    except _Refused as e:
        raise BnnflowError(f"{path}: not a CIFAR-10 batch (pickle refers to {e}); only the "
                           f"python-version files of cifar-10-python.tar.gz are read") from None
    except OSError as e:
        raise BnnflowError(f"{path}: cannot read ({e.strerror or e})") from e
    # Unpickling malformed bytes can raise nearly any exception type (UnpicklingError,
    # EOFError, ValueError, KeyError, ...); all of them mean the same thing here.
    except Exception as e:
        raise BnnflowError(f"{path}: not a readable pickle or truncated ({_one_line(e)}); "
                           f"expected a CIFAR-10 python batch, e.g. {CIFAR10_FILES[0]} of "
                           f"cifar-10-python.tar.gz") from e


def _get(d, key):
    """``d[key]`` with ``key`` as bytes (the real files) or str; None if it is absent."""
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    return None


def _key_name(key):
    if isinstance(key, bytes):
        return key.decode("latin-1")
    return key if isinstance(key, str) else repr(key)


def _key_names(d):
    return ", ".join(sorted(_key_name(k) for k in d)) or "none"


def channels_last(data):
    """Rows of CIFAR-10 ``data`` ``(n, 3072)`` as images ``(n, 32, 32, 3)``, channels last.

    A row holds the red plane, then the green, then the blue, each 32x32 row-major, so row
    element ``ch * 1024 + r * 32 + c`` becomes image element ``(r, c, ch)``.
    """
    data = np.asarray(data)
    return np.ascontiguousarray(data.reshape(-1, _CHANNELS, _SIDE, _SIDE).transpose(0, 2, 3, 1))


def _check_data(path, data):
    """``data`` as a uint8 array ``(n, 3072)``, or a BnnflowError saying what it is instead."""
    shape = getattr(data, "shape", None)
    dtype = getattr(data, "dtype", None)
    given = f"{shape} {dtype}" if shape is not None else type(data).__name__
    ok = isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == _PIXELS \
        and data.dtype.kind in "iu" \
        and (data.size == 0 or (data.min() >= 0 and data.max() <= 255))
    if not ok:
        raise BnnflowError(f"{path}: CIFAR-10 data must be a uint8 array of shape (n, {_PIXELS}), "
                           f"not {given}; expected a python-version batch of "
                           f"cifar-10-python.tar.gz")
    return data.astype(np.uint8, copy=False)


def _check_labels(path, labels, n):
    """``labels`` as int64 ``(n,)`` with values 0..9, or a BnnflowError."""
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError):
        array = None
    if array is not None and array.size == 0 and array.ndim == 1:
        array = array.astype(np.int64)
    if array is None or array.ndim != 1 or array.dtype.kind not in "iu":
        raise BnnflowError(f"{path}: CIFAR-10 labels must be a list of integers 0..9, not "
                           f"{type(labels).__name__}")
    if len(array) != n:
        raise BnnflowError(f"{path}: {n} images but {len(array)} labels; a CIFAR-10 batch has "
                           f"one label per image")
    if n and (array.min() < 0 or array.max() > 9):
        raise BnnflowError(f"{path}: CIFAR-10 labels must be 0..9, found {array.min()}.."
                           f"{array.max()}")
    return array.astype(np.int64)


def read_batch(path):
    """Read one CIFAR-10 batch file.

    Parameters
    ----------
    path : path
        A python-version batch, e.g. ``data_batch_1`` or ``test_batch``.

    Returns
    -------
    images : uint8 array ``(n, 32, 32, 3)``
        Channels last (see :func:`channels_last`).
    labels : int64 array ``(n,)``
        Class indices 0..9.

    Raises
    ------
    BnnflowError
        If the file cannot be read, is not a pickle or is truncated, refers to anything but
        numpy's array reconstruction, or does not hold a dict with ``data`` ``(n, 3072)``
        (values 0..255) and ``n`` ``labels`` in 0..9.
    """
    d = _unpickle(path)
    if not isinstance(d, dict):
        raise BnnflowError(f"{path}: not a CIFAR-10 batch (a pickled {type(d).__name__}, "
                           f"expected a dict with keys data and labels)")
    data, labels = _get(d, "data"), _get(d, "labels")
    if data is None or labels is None:
        hint = "; it looks like CIFAR-100, which is not supported" \
            if _get(d, "fine_labels") is not None else ""
        raise BnnflowError(f"{path}: not a CIFAR-10 batch (keys {_key_names(d)}; expected data "
                           f"and labels){hint}")
    data = _check_data(path, data)
    return channels_last(data), _check_labels(path, labels, len(data))


def read_meta(path):
    """Class names from a CIFAR-10 ``batches.meta`` file (key ``label_names``, 10 names).

    Raises
    ------
    BnnflowError
        If the file is not a readable pickle of a dict whose ``label_names`` is a list of ten
        names.
    """
    d = _unpickle(path)
    names = _get(d, "label_names") if isinstance(d, dict) else None
    if not isinstance(names, list | tuple) or len(names) != 10 \
            or not all(isinstance(n, bytes | str) for n in names):
        raise BnnflowError(f"{path}: not a CIFAR-10 {CIFAR10_META} (expected a dict whose "
                           f"label_names is a list of 10 names); remove it to use the standard "
                           f"names")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names)


def find_cifar10_dir(data_dir):
    """The directory holding the batches: ``data_dir`` or its ``cifar-10-batches-py``.

    The sub-folder is used when none of :data:`CIFAR10_FILES` is directly in ``data_dir``.

    Raises
    ------
    BnnflowError
        If ``data_dir`` is None, is not a directory, or (the one searched) lacks a batch file.
    """
    if data_dir is None:
        raise BnnflowError(f"data set 'cifar10' needs --data-dir, a directory holding the "
                           f"CIFAR-10 python batches: {_EXPECTED}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BnnflowError(f"CIFAR-10 directory {data_dir} does not exist or is not a "
                           f"directory; it must hold the CIFAR-10 python batches: {_EXPECTED}")
    sub = data_dir / CIFAR10_SUBDIR
    if sub.is_dir() and not any((data_dir / name).exists() for name in CIFAR10_FILES):
        data_dir = sub
    for name in CIFAR10_FILES:
        if not (data_dir / name).is_file():
            raise BnnflowError(f"CIFAR-10 directory {data_dir} lacks {name}; it must hold the "
                               f"CIFAR-10 python batches: {_EXPECTED}")
    return data_dir


def load_cifar10(data_dir):
    """Read CIFAR-10 from ``data_dir`` with its standard 50000/10000 train/test split.

    Parameters
    ----------
    data_dir : path or None
        Directory of the batches, or the directory holding ``cifar-10-batches-py``.

    Returns
    -------
    dict
        ``train_images``, ``test_images``: float64 ``(n, 32, 32, 3)``, values 0..255, channels
        last (the full training set takes 1.2 GB); ``train_labels``, ``test_labels``: int64
        ``(n,)``; ``classes``: tuple of 10 names, from ``batches.meta`` if present, else
        :data:`CIFAR10_CLASSES`.

    Raises
    ------
    BnnflowError
        A missing directory or file, or a malformed batch (see :func:`read_batch`).
    """
    directory = find_cifar10_dir(data_dir)
    batches = [read_batch(directory / name) for name in CIFAR10_FILES]
    train = batches[:-1]
    meta = directory / CIFAR10_META
    classes = read_meta(meta) if meta.is_file() else CIFAR10_CLASSES
    # Concatenate as uint8 and convert once: float64 copies are eight times larger.
    return {"train_images": np.concatenate([x for x, _ in train]).astype(np.float64),
            "train_labels": np.concatenate([y for _, y in train]),
            "test_images": batches[-1][0].astype(np.float64),
            "test_labels": batches[-1][1],
            "classes": classes}
