"""Layer kinds: what every layer of a model provides, whatever arithmetic it does.

A layer kind is a class whose instances are the layers of a :class:`~bnnflow.model.artifact.
BnnModel`; :data:`bnnflow.model.artifact.LAYER_KINDS` maps the manifest's ``kind`` value to
it. Every consumer goes through the members listed in :class:`LayerKind` instead of assuming a
dense binary layer: the golden model (:meth:`LayerKind.forward`), folding and the resource
estimates (:meth:`LayerKind.cycles`, :attr:`~LayerKind.neurons`, :attr:`~LayerKind.fan_in`,
:attr:`~LayerKind.output_pixels`), the manifest (:meth:`LayerKind.to_manifest`,
:meth:`LayerKind.from_manifest`), ``bnnflow inspect`` (:meth:`LayerKind.describe`) and the
weight geometry (:meth:`LayerKind.preactivation`). The hardware unit of a kind is registered
on the hardware side (``bnnflow.hw.units.UNITS``), as the model must not import ``hw``.

A new kind is its own module (the layer class) plus one line in ``LAYER_KINDS`` and one in
``UNITS``. ``binary_dense`` (:class:`bnnflow.model.dense.DenseLayer`) is the first.

Folding model. A layer is a matrix of ``neurons`` rows and ``fan_in`` columns applied once per
output pixel (``output_pixels``, 1 for a dense layer): a folding computes ``PE`` neurons of
``SIMD`` inputs per cycle, so it takes :func:`matrix_cycles` cycles per input vector.

This module also holds the checks of manifest fields every kind's ``from_manifest`` uses
(:func:`manifest_field`, :func:`positive_int`): one-line ``ValueError`` messages that name
where the field is.
"""

import math
from typing import ClassVar, Protocol

__all__ = ["LayerKind", "matrix_cycles", "manifest_field", "positive_int", "shape_field",
           "hidden_map_fields"]


class LayerKind(Protocol):
    """The members every layer kind provides (a layer is an instance of its kind's class).

    Attributes
    ----------
    kind : str
        Class attribute: the manifest's ``kind`` value, the key in ``LAYER_KINDS`` and in
        ``bnnflow.hw.units.UNITS``.
    name : str
        Unique within a model.
    in_width, out_width : int
        Elements of the input and of the output vector (the model checks that they chain).
    is_output : bool
        True when the layer emits the network's scores (the last layer, and only it).
    activation_bits : int or None
        Bits per output activation of a hidden layer; ``None`` for the output layer.
    in_bits : int
        Bits per input element: 1, or ``n`` after a layer with ``n``-bit activations (the
        model checks that they chain).
    weight_bits : int
        Bits per stored weight (0 for a layer without weights).
    synapses : int
        Number of stored weights.
    neurons, fan_in : int
        The matrix that ``PE`` (``1..neurons``) and ``SIMD`` (``1..fan_in``) fold.
    output_pixels : int
        Times the matrix is applied per input vector (1 for a dense layer).
    folds : bool, optional
        False for a kind whose unit does not fold (a max-pool): its folding is written
        ``1x1``. Absent means True.
    """

    kind: ClassVar[str]
    name: str

    @property
    def in_width(self) -> int: ...

    @property
    def out_width(self) -> int: ...

    @property
    def is_output(self) -> bool: ...

    @property
    def activation_bits(self) -> int | None: ...

    @property
    def in_bits(self) -> int: ...

    @property
    def weight_bits(self) -> int: ...

    @property
    def synapses(self) -> int: ...

    @property
    def neurons(self) -> int: ...

    @property
    def fan_in(self) -> int: ...

    @property
    def output_pixels(self) -> int: ...

    def forward(self, x):
        """Golden step: input ``(B, in_width)`` to ``(outputs, counts)``, both ``(B,
        out_width)``: the activations (or, for the output layer, the scores) and the integer
        values they come from (popcounts for binary dense layers), following
        :mod:`bnnflow.model.conventions`."""

    def cycles(self, fold) -> int:
        """Cycles per input vector folded as ``fold`` (``.pe``, ``.simd``), output pixels
        included."""

    @staticmethod
    def preactivation(x, weights):
        """Real-valued pre-activations of inputs ``x`` against (latent or quantized) real
        weights of this kind's shape, as training computes them (the weight geometry)."""

    def describe(self) -> dict:
        """Kind-specific facts for ``bnnflow inspect`` (JSON-able; may be empty)."""

    def to_manifest(self):
        """``(entry, arrays)``: the manifest entry (JSON) and ``{array name: ndarray}``."""

    @classmethod
    def from_manifest(cls, entry, get_array, where):
        """The layer from its manifest entry; ``get_array(name)`` reads an array; errors are
        ``ValueError`` starting with ``where``."""


def matrix_cycles(k, n, fold, pixels=1):
    """Cycles of a ``K``-input, ``N``-neuron matrix folded as ``fold`` applied ``pixels``
    times: ``pixels * ceil(N / PE) * ceil(K / SIMD)``."""
    return pixels * math.ceil(n / fold.pe) * math.ceil(k / fold.simd)


def manifest_field(obj, key, typ, where):
    """``obj[key]``, which must exist and be a ``typ``; ``ValueError`` naming ``where``."""
    if key not in obj:
        raise ValueError(f"{where}: missing field {key!r}")
    if not isinstance(obj[key], typ):
        raise ValueError(f"{where}: field {key!r} must be {typ.__name__}, "
                         f"not {type(obj[key]).__name__}")
    return obj[key]


def positive_int(obj, key, where):
    """``obj[key]`` as a positive integer (not a bool); ``ValueError`` naming ``where``."""
    value = manifest_field(obj, key, int, where)
    if isinstance(value, bool) or value <= 0:
        raise ValueError(f"{where}: {key} must be a positive integer, not {value!r}")
    return value


def shape_field(obj, key, length, where):
    """``obj[key]`` as a tuple of ``length`` positive integers (a map shape or a kernel)."""
    value = manifest_field(obj, key, list, where)
    if len(value) != length or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                       for v in value):
        raise ValueError(f"{where}: {key} must be {length} positive integers, not {value!r}")
    return tuple(value)


def hidden_map_fields(entry, in_shape, out_shape, where, kind):
    """Check a map layer's manifest entry (conv or pool) against its shapes: ``in_width`` and
    ``out_width`` are the shapes' sizes, and ``output`` is ``"activation"`` (a hidden layer)."""
    for key, shape in (("in_width", in_shape), ("out_width", out_shape)):
        size = math.prod(shape)
        if positive_int(entry, key, where) != size:
            raise ValueError(f"{where}: {key} must be {size} for shape {list(shape)}, not "
                             f"{entry[key]}")
    if manifest_field(entry, "output", str, where) != "activation":
        raise ValueError(f"{where}: a {kind} layer is a hidden layer: output must be "
                         f"'activation', not {entry['output']!r}")
