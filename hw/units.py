"""Hardware units of the layer kinds: the registry :class:`~bnnflow.hw.top.BnnTop` consults.

:data:`UNITS` maps a layer kind's name (:mod:`bnnflow.model.kinds`) to a :class:`UnitKind`:
how to build the streaming unit of one layer of that kind and how its streams may be cut.
``binary_dense`` layers become :class:`~bnnflow.hw.mvtu.MVTU` (``ternary_dense`` too, with a
mask), ``binary_conv2d`` and ``ternary_conv2d`` layers :class:`~bnnflow.hw.conv.ConvUnit` (a
sliding-window unit and an MVTU), ``maxpool2d`` layers :class:`~bnnflow.hw.maxpool.MaxPool`.
A new kind adds one line here (and one in :data:`bnnflow.model.artifact.LAYER_KINDS`). Conv
and pool units stream maps one pixel per transfer (``pixels``), so the layer after them must
take pixel chunks.

The unit interface (what :class:`~bnnflow.hw.top.BnnTop`, its sidecar and the latency formula
use; :class:`~bnnflow.hw.mvtu.MVTU` documents its own values):

* ``i``: ``In(stream.Signature(in_chunk))`` and ``o``: ``Out(stream.Signature(out_chunk))``,
  valid/ready streams that hold a payload until it transfers and lose nothing under stalls on
  either side; ``in_chunk`` is the layer's ``in_width`` unless :func:`~bnnflow.hw.top.
  layer_chunks` (through :class:`UnitKind`) cuts the stream in chunks.
* ``cycles``: cycles between vectors in steady state (the unit's II, equal to the layer's
  :func:`~bnnflow.hw.folding.layer_cycles`).
* ``latency``: edges from the input transfer to the output transfer (of the last chunk) for a
  vector entering an idle unit with ``o.ready`` high.
* ``accept_wait``: cycles a whole input vector is held before its transfer (0 for most units).
* ``out_width``: bits of a whole output vector, sent as ``ceil(out_width / out_chunk)``
  transfers, the lowest bits first; ``lane_width``: bits per output element (the popcount
  width of the output layer).
* ``sidecar()``: the unit's own entries of its layer in the sidecar (may be empty).

A ``BnnTop`` may be built for its sidecar or ports alone and never elaborated, so the module
whose code constructs the units starts with ``# amaranth: UnusedElaboratable=no`` (Amaranth
attributes a unit to the file that called its constructor), as ``mvtu.py`` and ``top.py`` do.
"""

from collections.abc import Callable
from dataclasses import dataclass

from .conv import ConvUnit
from .maxpool import MaxPool
from .mvtu import MVTU
from .popcount import DEFAULT_STYLE

__all__ = ["UnitOptions", "UnitKind", "UNITS", "unit_kind", "build_unit"]


@dataclass(frozen=True)
class UnitOptions:
    """Design and stream options of one unit, as :class:`~bnnflow.hw.top.BnnTop` passes them.

    Parameters
    ----------
    pipeline : int
        Register stages in popcount trees (``>= 0``).
    popcount_style : str
        Popcount tree structure (:data:`bnnflow.hw.popcount.STYLES`).
    rom_register : bool
        Weight register after each weight ROM.
    in_chunk : int or None
        Bits per input transfer: the layer's ``in_width`` or ``None`` for whole vectors, else
        a width the unit's :attr:`UnitKind.takes_chunk` accepted.
    out_chunks : bool
        Send the output in chunks of the unit's :attr:`UnitKind.out_chunk` bits.
    pixel_period : int
        Cycles between input pixels the units before this one can sustain (1 for the first
        layer); a conv unit sizes its window queue by it (:class:`bnnflow.hw.conv.ConvUnit`).
    window : str or None
        How a conv unit's windows reach its MVTU, ``"registers"`` or ``"pixels"``, or ``None``
        for :func:`bnnflow.hw.conv.window_kind`'s choice.
    """

    pipeline: int = 0
    popcount_style: str = DEFAULT_STYLE
    rom_register: bool = False
    in_chunk: int | None = None
    out_chunks: bool = False
    pixel_period: int = 1
    window: str | None = None


def whole_vectors_out(layer, fold):
    """Default :attr:`UnitKind.out_chunk`: the unit sends whole vectors only."""
    return None


def whole_vectors_in(layer, fold, width):
    """Default :attr:`UnitKind.takes_chunk`: the unit takes whole vectors only."""
    return False


def any_chunk_in(layer, fold):
    """Default :attr:`UnitKind.in_chunk`: no width is imposed on the unit's input stream."""
    return None


@dataclass(frozen=True)
class UnitKind:
    """How the layers of one kind become hardware.

    Parameters
    ----------
    build : callable
        ``build(layer, fold, options)`` returns the unit (an Amaranth component with the unit
        interface of this module) of ``layer`` folded as ``fold`` with :class:`UnitOptions`.
    out_chunk : callable
        ``out_chunk(layer, fold)``: bits per transfer when the unit can send its output in
        chunks as it computes them, or ``None`` (whole vectors only, the default).
    takes_chunk : callable
        ``takes_chunk(layer, fold, width)``: whether the unit can take its input in chunks of
        ``width`` bits (the default: no, whole vectors only).
    in_chunk : callable
        ``in_chunk(layer, fold)``: the input chunk width the unit always takes (a pixel of a
        map for conv and pool units), or ``None`` (the default).
    pixels : bool
        The unit streams maps pixel by pixel: it always sends ``out_chunk`` bits per
        transfer, and the next unit must take them.
    """

    build: Callable
    out_chunk: Callable = whole_vectors_out
    takes_chunk: Callable = whole_vectors_in
    in_chunk: Callable = any_chunk_in
    pixels: bool = False


#: Layer kind name -> :class:`UnitKind`.
UNITS = {
    "binary_dense": UnitKind(MVTU.from_layer, MVTU.out_chunk, MVTU.takes_chunk),
    "ternary_dense": UnitKind(MVTU.from_layer, MVTU.out_chunk, MVTU.takes_chunk),
    "binary_conv2d": UnitKind(ConvUnit.from_layer, ConvUnit.out_chunk, ConvUnit.takes_chunk,
                              ConvUnit.in_chunk, pixels=True),
    "ternary_conv2d": UnitKind(ConvUnit.from_layer, ConvUnit.out_chunk, ConvUnit.takes_chunk,
                               ConvUnit.in_chunk, pixels=True),
    "maxpool2d": UnitKind(MaxPool.from_layer, MaxPool.out_chunk, MaxPool.takes_chunk,
                          MaxPool.in_chunk, pixels=True),
}


def unit_kind(layer, where="layer"):
    """The :class:`UnitKind` of ``layer``'s kind.

    Raises
    ------
    ValueError
        If no hardware unit is registered for the kind (the message names ``where``, the kind
        and the known kinds).
    """
    if layer.kind not in UNITS:
        raise ValueError(f"{where} ({layer.name}): no hardware unit for layer kind "
                         f"{layer.kind!r} (known: {', '.join(sorted(UNITS))})")
    return UNITS[layer.kind]


def build_unit(layer, fold, options, where="layer"):
    """The unit of ``layer`` folded as ``fold`` with :class:`UnitOptions` ``options``."""
    return unit_kind(layer, where).build(layer, fold, options)
