"""Tiny CIFAR-10 batch files in the format of the real "python version" ones.

The real batches were pickled by Python 2 (protocol 2): their strings, the dict keys and the
array bytes alike, are byte strings (opcodes ``SHORT_BINSTRING``/``BINSTRING``) and the array
is rebuilt by ``numpy.core.multiarray._reconstruct``. Python 3's pickler writes bytes at
protocol 2 as calls of ``_codecs.encode`` and names numpy 2's module ``numpy._core``, so
:class:`Py2Pickler` writes both the way Python 2 did.
"""

import io
import pickle
import struct

import numpy as np

CLASS_NAMES = (b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
               b"ship", b"truck")

_RECONSTRUCT = np.zeros(0).__reduce__()[0]


def _save_py2_string(self, obj):
    """Write bytes or str as a Python 2 ``str``: loaded back as bytes with encoding="bytes"."""
    data = obj.encode("latin-1") if isinstance(obj, str) else obj
    if len(data) < 256:
        self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
    else:
        self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
    self.memoize(obj)


class Py2Pickler(pickle._Pickler):
    """A protocol-2 pickler writing strings and numpy's reconstruct global as Python 2 did.

    Built on the pure-Python pickler, whose per-type dispatch table can be extended.
    """

    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[bytes] = _save_py2_string
    dispatch[str] = _save_py2_string

    def __init__(self, file):
        super().__init__(file, protocol=2)

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_dumps(obj):
    """``obj`` pickled as by Python 2's cPickle at protocol 2."""
    buffer = io.BytesIO()
    Py2Pickler(buffer).dump(obj)
    return buffer.getvalue()


def batch_dict(images, labels, label=b"training batch 1 of 5"):
    """The dict of one batch: ``images`` uint8 ``(n, 3072)`` rows, ``labels`` a list."""
    return {b"batch_label": label, b"labels": [int(y) for y in labels],
            b"data": np.asarray(images, dtype=np.uint8),
            b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(labels))]}


def write_cifar_batches(directory, n_per_batch=4, n_test=6, seed=0, meta=True):
    """Write ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and, if ``meta``,
    ``batches.meta`` into ``directory`` (created if needed), with random pixels and labels.

    ``meta`` is True (the real class names), a sequence of ten names, or False (no file).
    Returns ``{file name: (data uint8 (n, 3072), labels int64 (n,))}`` for the six batches,
    and ``"label_names"`` -> the names written as str (None without ``meta``).
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        n = n_test if name == "test_batch" else n_per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.int64)
        label = b"testing batch 1 of 1" if name == "test_batch" else \
            f"training batch {i + 1} of 5".encode()
        (directory / name).write_bytes(py2_dumps(batch_dict(data, labels, label)))
        written[name] = (data, labels)
    written["label_names"] = None
    if meta:
        names = list(CLASS_NAMES) if meta is True else [str(n).encode() for n in meta]
        (directory / "batches.meta").write_bytes(py2_dumps(
            {b"num_cases_per_batch": n_per_batch, b"label_names": names, b"num_vis": 3072}))
        written["label_names"] = tuple(n.decode() for n in names)
    return written
