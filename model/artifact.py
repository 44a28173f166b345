"""The ``.bnn`` artifact: the one contract between training and hardware.

A ``.bnn`` file is a zip archive holding

* ``manifest.json``: a versioned, self-describing manifest (see below), and
* one ``.npy`` file per array (weights as packed bits, integer thresholds).

Manifest (format version 1)::

    {
      "format": "bnnflow-model",
      "format_version": 1,
      "input": {"width": 64, "shape": [8, 8],
                "encoding": {"kind": "threshold", "scale": 16.0, "threshold": 0.5}},
      "classes": ["0", "1", ...],
      "layers": [
        {"name": "fc0", "kind": "binary_dense", "in_width": 64, "out_width": 64,
         "weight_bits": 1, "activation_bits": 1, "output": "activation",
         "arrays": {"weights": "fc0/weights.npy", "thresholds": "fc0/thresholds.npy"}},
        ...,
        {"name": "fc3", "kind": "binary_dense", "in_width": 64, "out_width": 10,
         "weight_bits": 1, "activation_bits": null, "output": "popcount",
         "arrays": {"weights": "fc3/weights.npy"}}
      ],
      "provenance": {"preset": "tfc", "dataset": "digits", "split_seed": 0, ...},
      "arrays": {"fc0/weights.npy": {"dtype": "uint8", "shape": [64, 8], "sha256": "..."}},
      "checksum": "sha256:..."
    }

``checksum`` is the SHA-256 of the canonical JSON of the manifest without the ``checksum`` key;
as the manifest lists every array's SHA-256, it covers the whole file. Weights are stored
packed along the input axis, LSB first (:mod:`bnnflow.model.conventions`). Thresholds are
``int32`` of shape ``(N, T)`` with ``T = 2**activation_bits - 1`` sorted values per neuron, each
in ``[0, K + 1]``.

New layer kinds (ternary weights, multi-bit inputs, convolutions) are new ``kind`` values with
their own entry in :data:`LAYER_KINDS`; the container and the version stay.
"""

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArtifactError
from ..fileio import atomic_path
from . import conventions, encoding

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SUFFIX",
    "InputSpec",
    "DenseLayer",
    "BnnModel",
    "LAYER_KINDS",
    "save",
    "load",
    "model_checksum",
]

FORMAT = "bnnflow-model"
FORMAT_VERSION = 1
SUFFIX = ".bnn"


@dataclass(frozen=True)
class InputSpec:
    """How raw images become the first layer's input bits.

    Parameters
    ----------
    width : int
        Number of input bits ``K0``.
    shape : tuple of int
        Shape of one raw image; its size must equal ``width``. Pixels are flattened in
        row-major (C) order, so pixel ``i`` of the flattened image is input bit ``i``.
    encoding : dict
        How pixels become bits (:mod:`bnnflow.model.encoding`):
        ``{"kind": "threshold", "scale": s, "threshold": t}`` gives bit 1 where
        ``pixel / s >= t`` (so a pixel exactly at the threshold is +1, as ``sign(0) = +1``);
        ``{"kind": "thermometer", "scale": s, "thresholds": [t0, t1, ...]}`` gives one such bit
        per threshold and pixel, level-major (``width = levels * pixels``).
    """

    width: int
    shape: tuple = ()
    encoding: dict = field(default_factory=lambda: {"kind": "threshold", "scale": 1.0,
                                                    "threshold": 0.5})

    @property
    def levels(self):
        """Bits per pixel (1 for a threshold, the number of thresholds for a thermometer)."""
        return encoding.validate(self.encoding)

    def check(self):
        """Raise ``ValueError`` unless the encoding is valid and ``width`` matches ``shape``."""
        levels = encoding.validate(self.encoding)
        if self.shape and int(np.prod(self.shape)) * levels != self.width:
            raise ValueError(f"input width {self.width} does not match shape {list(self.shape)} "
                             f"with {levels} bit(s) per pixel")

    def encode(self, images):
        """Binarize raw images ``(B, *shape)`` (or ``(B, pixels)``) into bits ``(B, width)``."""
        levels = encoding.validate(self.encoding)
        images = np.asarray(images, dtype=np.float64)
        flat = images.reshape(images.shape[0], -1)
        if flat.shape[1] * levels != self.width:
            raise ValueError(f"images must have {self.width // levels} pixels each, "
                             f"not {flat.shape[1]}")
        return encoding.encode(self.encoding, flat)

    def to_manifest(self):
        return {"width": int(self.width), "shape": [int(s) for s in self.shape],
                "encoding": dict(self.encoding)}


@dataclass(frozen=True)
class DenseLayer:
    """A fully connected binary layer.

    Parameters
    ----------
    name : str
    weights : array of 0/1, shape ``(N, K)``
        Bit 1 is weight +1, bit 0 is weight -1.
    thresholds : int array ``(N, T)`` or None
        Sorted popcount thresholds per neuron (``T = 1`` for binary activations); ``None`` for
        the output layer, which emits popcounts.
    """

    name: str
    weights: np.ndarray
    thresholds: np.ndarray | None = None

    kind = "binary_dense"

    @property
    def in_width(self):
        return int(self.weights.shape[1])

    @property
    def out_width(self):
        return int(self.weights.shape[0])

    @property
    def is_output(self):
        """True when the layer emits popcounts instead of activations."""
        return self.thresholds is None

    @property
    def activation_bits(self):
        """Bits per output activation; ``None`` for a popcount output layer."""
        if self.thresholds is None:
            return None
        return int(self.thresholds.shape[1] + 1).bit_length() - 1

    def to_manifest(self):
        entry = {
            "name": self.name, "kind": self.kind, "in_width": self.in_width,
            "out_width": self.out_width, "weight_bits": 1,
            "activation_bits": self.activation_bits,
            "output": "popcount" if self.is_output else "activation",
            "arrays": {"weights": f"{self.name}/weights.npy"},
        }
        arrays = {f"{self.name}/weights.npy": conventions.pack_bits(self.weights)}
        if not self.is_output:
            entry["arrays"]["thresholds"] = f"{self.name}/thresholds.npy"
            arrays[f"{self.name}/thresholds.npy"] = self.thresholds.astype(np.int32)
        return entry, arrays

    @classmethod
    def from_manifest(cls, entry, get_array, where):
        """Build the layer from its manifest entry; ``get_array(name)`` returns an array."""
        k, n = _positive_int(entry, "in_width", where), _positive_int(entry, "out_width", where)
        arrays = _field(entry, "arrays", dict, where)
        output = _field(entry, "output", str, where)
        if output not in ("activation", "popcount"):
            raise ValueError(f"{where}: output must be 'activation' or 'popcount', "
                             f"not {output!r}")
        if entry.get("weight_bits", 1) != 1:
            raise ValueError(f"{where}: weight_bits must be 1 for binary_dense, "
                             f"not {entry.get('weight_bits')!r}")
        packed = get_array(_field(arrays, "weights", str, where))
        if packed.dtype != np.uint8 or packed.shape != (n, (k + 7) // 8):
            raise ValueError(f"{where}: weights must be uint8 of shape {(n, (k + 7) // 8)} "
                             f"for {n} neurons of {k} inputs, not {packed.dtype} "
                             f"{tuple(packed.shape)}")
        weights = conventions.unpack_bits(packed, k)
        if k % 8 and np.any(conventions.unpack_bits(packed, packed.shape[1] * 8)[:, k:]):
            raise ValueError(f"{where}: weights have non-zero padding bits past input {k}")
        thresholds = None
        if output == "activation":
            bits = _positive_int(entry, "activation_bits", where)
            t = get_array(_field(arrays, "thresholds", str, where))
            expected = (n, 2 ** bits - 1)
            if t.dtype.kind not in "iu" or t.shape != expected:
                raise ValueError(f"{where}: thresholds must be integers of shape {expected}, "
                                 f"not {t.dtype} {tuple(t.shape)}")
            t = t.astype(np.int64)
            if t.size and (t.min() < 0 or t.max() > k + 1):
                raise ValueError(f"{where}: threshold out of range: values must lie in "
                                 f"[0, {k + 1}] for {k} inputs, found [{t.min()}, {t.max()}]")
            if np.any(np.diff(t, axis=1) < 0):
                raise ValueError(f"{where}: thresholds of a neuron must be sorted ascending")
            thresholds = t
        return cls(name=str(entry["name"]), weights=weights, thresholds=thresholds)


#: Layer kinds this version reads, by the manifest's ``kind`` value.
LAYER_KINDS = {DenseLayer.kind: DenseLayer}


@dataclass(frozen=True)
class BnnModel:
    """A binarized network as the hardware sees it.

    Parameters
    ----------
    layers : tuple of layers
        Hidden layers emit activations; the last layer emits popcounts.
    input : InputSpec
    classes : tuple of str
        Label of each output neuron.
    provenance : dict
        Where the model came from (preset, data set, split seed, accuracies, ...).
    """

    layers: tuple
    input: InputSpec
    classes: tuple = ()
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        self.validate()

    @property
    def widths(self):
        """Input width followed by every layer's output width."""
        return [self.input.width] + [layer.out_width for layer in self.layers]

    @property
    def num_classes(self):
        return self.layers[-1].out_width

    def validate(self):
        """Raise ``ValueError`` if the layers do not chain or the output is not popcounts."""
        if not self.layers:
            raise ValueError("a model needs at least one layer")
        width = self.input.width
        self.input.check()
        for i, layer in enumerate(self.layers):
            if layer.in_width != width:
                raise ValueError(f"layer {i} ({layer.name}) has {layer.in_width} inputs but "
                                 f"receives {width}")
            last = i == len(self.layers) - 1
            if last != layer.is_output:
                raise ValueError(f"layer {i} ({layer.name}): only the last layer emits "
                                 f"popcounts, and it must")
            if not last and layer.activation_bits != 1:
                raise ValueError(f"layer {i} ({layer.name}): {layer.activation_bits}-bit "
                                 f"activations are not supported yet")
            width = layer.out_width
        if self.classes and len(self.classes) != width:
            raise ValueError(f"{len(self.classes)} class labels for {width} outputs")
        if len({layer.name for layer in self.layers}) != len(self.layers):
            raise ValueError("layer names must be unique")

    def manifest(self):
        """Return ``(manifest, arrays)``; the manifest has no checksum yet."""
        entries, arrays = [], {}
        for layer in self.layers:
            entry, layer_arrays = layer.to_manifest()
            entries.append(entry)
            arrays.update(layer_arrays)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "input": self.input.to_manifest(),
            "classes": list(self.classes) or [str(i) for i in range(self.num_classes)],
            "layers": entries,
            "provenance": _jsonable(self.provenance),
            "arrays": {name: {"dtype": str(a.dtype), "shape": list(a.shape),
                              "sha256": hashlib.sha256(_npy_bytes(a)).hexdigest()}
                       for name, a in arrays.items()},
        }
        return manifest, arrays


def _npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _canonical(manifest):
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def model_checksum(manifest):
    """``sha256:<hex>`` of the canonical manifest without its ``checksum`` key."""
    return "sha256:" + hashlib.sha256(_canonical(manifest)).hexdigest()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def save(model, path):
    """Write ``model`` to ``path`` atomically (temporary file, then rename).

    Returns the model's checksum string.
    """
    manifest, arrays = model.manifest()
    manifest["checksum"] = model_checksum(manifest)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            # A fixed timestamp keeps the file reproducible byte for byte.
            def add(name, data):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
            add("manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            for name in sorted(arrays):
                add(name, _npy_bytes(arrays[name]))
    return manifest["checksum"]


def load(path):
    """Read and validate a ``.bnn`` file.

    Raises
    ------
    ArtifactError
        One line naming the file and the problem: missing or not a zip (or truncated), no
        manifest, unknown format or version, missing array, checksum mismatch, shape mismatch,
        threshold out of range.
    """
    model, _ = load_with_manifest(path)
    return model


def load_with_manifest(path):
    """Like :func:`load`, and also return the manifest (for ``bnnflow inspect``)."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(path, "no such file (train one with 'bnnflow train')")
    if path.is_dir():
        raise ArtifactError(path, "is a directory, not a .bnn model file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ArtifactError(
            path, f"not a bnnflow model: not a zip archive or truncated ({e})") from e
    with zf:
        try:
            return _read(zf, path)
        except ArtifactError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            raise ArtifactError(path, f"truncated or corrupt archive ({e})") from e
        except ValueError as e:
            raise ArtifactError(path, str(e)) from e


def _read(zf, path):
    names = set(zf.namelist())
    if "manifest.json" not in names:
        raise ArtifactError(path, "not a bnnflow model: manifest.json is missing")
    try:
        manifest = json.loads(zf.read("manifest.json"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(path, f"manifest.json is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(path, f"not a bnnflow model: format must be {FORMAT!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(path, f"unknown format version {version!r}: this bnnflow reads "
                                  f"version {FORMAT_VERSION}; upgrade bnnflow or re-export")
    checksum = manifest.get("checksum")
    if checksum != model_checksum(manifest):
        raise ArtifactError(path, "checksum mismatch in manifest.json: the file was modified "
                                  "or corrupted; re-export the model")
    listed = _field(manifest, "arrays", dict, "manifest")

    def get_array(name):
        if name not in listed:
            raise ArtifactError(path, f"missing array {name!r}: not listed in the manifest")
        if name not in names:
            raise ArtifactError(path, f"missing array {name!r}: the archive does not hold it")
        data = zf.read(name)
        if hashlib.sha256(data).hexdigest() != listed[name].get("sha256"):
            raise ArtifactError(path, f"checksum mismatch for array {name!r}: the file is "
                                      f"corrupt; re-export the model")
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as e:
            raise ArtifactError(path, f"array {name!r} is not a valid .npy array ({e})") from e

    inp = _field(manifest, "input", dict, "input")
    input_spec = InputSpec(width=_positive_int(inp, "width", "input"),
                           shape=tuple(int(s) for s in inp.get("shape", [])),
                           encoding=dict(_field(inp, "encoding", dict, "input")))
    layers = []
    for i, entry in enumerate(_field(manifest, "layers", list, "manifest")):
        where = f"layer {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be an object")
        kind = entry.get("kind")
        if kind not in LAYER_KINDS:
            raise ValueError(f"{where}: unknown layer kind {kind!r} (this bnnflow knows "
                             f"{', '.join(sorted(LAYER_KINDS))}); upgrade bnnflow")
        layers.append(LAYER_KINDS[kind].from_manifest(entry, get_array, where))
    model = BnnModel(layers=layers, input=input_spec, classes=manifest.get("classes", []),
                     provenance=manifest.get("provenance", {}))
    return model, manifest


def _field(obj, key, typ, where):
    if key not in obj:
        raise ValueError(f"{where}: missing field {key!r}")
    if not isinstance(obj[key], typ):
        raise ValueError(f"{where}: field {key!r} must be {typ.__name__}, "
                         f"not {type(obj[key]).__name__}")
    return obj[key]


def _positive_int(obj, key, where):
    value = _field(obj, key, int, where)
    if isinstance(value, bool) or value <= 0:
        raise ValueError(f"{where}: {key} must be a positive integer, not {value!r}")
    return value
