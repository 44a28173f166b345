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

Each layer entry is written and read by its kind (:mod:`bnnflow.model.kinds`), re-exported
here: ``binary_dense`` (:class:`~bnnflow.model.dense.DenseLayer`), ``binary_conv2d``
(:class:`~bnnflow.model.conv.Conv2dLayer`: adds ``in_shape``, ``out_shape`` ``[H, W, C]`` and
``kernel`` ``[kh, kw]``; weights ``(Cout, kh * kw * Cin)`` in ``(kh, kw, Cin)`` window order)
and ``maxpool2d`` (:class:`~bnnflow.model.pool.MaxPool2dLayer`: ``in_shape``, ``out_shape``,
``window``, ``stride``; no arrays) and ``ternary_dense``
(:class:`~bnnflow.model.ternary.TernaryDenseLayer`: a ``mask`` array beside the sign bits,
``weight_bits`` 2, hidden layers only; thresholds in ``[0, m + 1]`` for a neuron's ``m`` live
weights) and ``ternary_conv2d`` (:class:`~bnnflow.model.ternary_conv.TernaryConv2dLayer`:
the fields of ``binary_conv2d`` plus the ``mask`` array of ``ternary_dense``). Dense and conv
entries carry ``in_bits`` when their inputs have more than one bit (absent: 1, so files
written before it existed load unchanged). Feature maps are channels-last
(:mod:`bnnflow.model.conventions`): a conv layer's ``in_shape`` must be the previous layer's
``out_shape``, or for the first layer the input's ``shape`` (``[H, W]`` is ``[H, W, 1]``), and
a dense layer reads the flattened map as it is. New kinds (ternary weights, multi-bit inputs)
are new ``kind`` values with their own entry in :data:`LAYER_KINDS`; the container and the
version stay, so files written before conv layers existed still load.
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
from . import encoding
from .conv import Conv2dLayer
from .dense import DenseLayer
from .kinds import manifest_field, positive_int
from .pool import MaxPool2dLayer
from .ternary import TernaryDenseLayer
from .ternary_conv import TernaryConv2dLayer

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SUFFIX",
    "InputSpec",
    "DenseLayer",
    "Conv2dLayer",
    "MaxPool2dLayer",
    "TernaryDenseLayer",
    "TernaryConv2dLayer",
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
    def bits(self):
        """Bits of one input element: 8 for 8-bit pixels (``pixels`` kind), else 1."""
        return encoding.element_bits(self.encoding)

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

    @property
    def map_shape(self):
        """The input as a channels-last ``(H, W, C)`` map, or ``None`` when its elements are
        not laid out that way (a thermometer code is level-major).

        A ``(H, W)`` image with one element per pixel is ``(H, W, 1)``; a ``(H, W, C)`` colour
        image with one element per channel value (a bit, or an 8-bit ``pixels`` value) is
        itself.
        """
        if self.levels != 1 or len(self.shape) not in (2, 3):
            return None
        return (*self.shape, 1) if len(self.shape) == 2 else tuple(self.shape)

    def to_manifest(self):
        return {"width": int(self.width), "shape": [int(s) for s in self.shape],
                "encoding": dict(self.encoding)}


#: Layer kinds this version reads, by the manifest's ``kind`` value: kind name -> the layer
#: class (:class:`bnnflow.model.kinds.LayerKind`). A new kind is one more line here (and one in
#: ``bnnflow.hw.units.UNITS`` for its hardware).
LAYER_KINDS = {DenseLayer.kind: DenseLayer, Conv2dLayer.kind: Conv2dLayer,
               MaxPool2dLayer.kind: MaxPool2dLayer, TernaryDenseLayer.kind: TernaryDenseLayer,
               TernaryConv2dLayer.kind: TernaryConv2dLayer}


@dataclass(frozen=True)
class BnnModel:
    """A binarized network as the hardware sees it.

    Parameters
    ----------
    layers : tuple of layers
        Instances of layer kinds (:class:`bnnflow.model.kinds.LayerKind`, registered in
        :data:`LAYER_KINDS`). Hidden layers emit activations; the last layer emits popcounts.
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
        if self.layers[0].in_bits != self.input.bits:
            raise ValueError(f"layer 0 ({self.layers[0].name}) takes "
                             f"{self.layers[0].in_bits}-bit inputs, but the "
                             f"input has {self.input.bits}-bit elements")
        shape = self.input.map_shape
        for i, layer in enumerate(self.layers):
            if layer.in_width != width:
                raise ValueError(f"layer {i} ({layer.name}) has {layer.in_width} inputs but "
                                 f"receives {width}")
            in_shape = getattr(layer, "in_shape", None)
            if in_shape is not None and tuple(in_shape) != shape:
                got = "x".join(map(str, shape)) if shape else "a flat vector"
                raise ValueError(f"layer {i} ({layer.name}) takes a "
                                 f"{'x'.join(map(str, in_shape))} map but receives {got}")
            shape = getattr(layer, "out_shape", None)
            last = i == len(self.layers) - 1
            if last != layer.is_output:
                raise ValueError(f"layer {i} ({layer.name}): only the last layer emits "
                                 f"popcounts, and it must")
            if not last:
                nxt = self.layers[i + 1]
                if nxt.in_bits != layer.activation_bits:
                    raise ValueError(f"layer {i} ({layer.name}) emits "
                                     f"{layer.activation_bits}-bit activations but layer "
                                     f"{i + 1} ({nxt.name}) takes "
                                     f"{nxt.in_bits}-bit inputs")
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
    if not path.is_file():      # a device such as /dev/zero would be read without end
        raise ArtifactError(path, "is not a regular file, not a .bnn model file")
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
    listed = manifest_field(manifest, "arrays", dict, "manifest")

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

    inp = manifest_field(manifest, "input", dict, "input")
    input_spec = InputSpec(width=positive_int(inp, "width", "input"),
                           shape=tuple(int(s) for s in inp.get("shape", [])),
                           encoding=dict(manifest_field(inp, "encoding", dict, "input")))
    layers = []
    for i, entry in enumerate(manifest_field(manifest, "layers", list, "manifest")):
        where = f"layer {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be an object")
        kind = entry.get("kind")
        if kind not in LAYER_KINDS:
            raise ValueError(f"{where}: unknown layer kind {kind!r} (this bnnflow knows "
                             f"{', '.join(sorted(LAYER_KINDS))}); upgrade bnnflow")
        layers.append(LAYER_KINDS[kind].from_manifest(entry, get_array, where))
    provenance = manifest.get("provenance", {})
    if not isinstance(provenance, dict):       # commands read it as an object
        raise ValueError(f"manifest: field 'provenance' must be an object, not "
                         f"{type(provenance).__name__}")
    classes = manifest.get("classes", [])
    if not isinstance(classes, list):
        raise ValueError(f"manifest: field 'classes' must be a list, not "
                         f"{type(classes).__name__}")
    model = BnnModel(layers=layers, input=input_spec, classes=classes, provenance=provenance)
    return model, manifest

