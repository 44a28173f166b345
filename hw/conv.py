# amaranth: UnusedElaboratable=no
"""Conv layer unit: a sliding-window unit feeding the matrix-vector-threshold unit.

::

    i (pixel, Cin bits) --> [[pad queue] --> PadMap] --> SlidingWindow
        --(window, kh*kw*Cin bits)--> queue --> MVTU --> o        ([...]: padded layers only)

A ``binary_conv2d`` layer is ``Cout`` neurons over windows of ``kh * kw * Cin`` inputs, applied
at every output position: the :class:`~bnnflow.hw.window.SlidingWindow` turns the input pixel
stream into windows in the ``(kh, kw, Cin)`` order of the weights, and the same
:class:`~bnnflow.hw.mvtu.MVTU` that computes a dense layer computes one output pixel per
window, folded by ``PE`` (output channels) and ``SIMD`` (window bits). Input and output are
pixel streams (one pixel per transfer, channels-last, rows top to bottom), so a conv layer
never holds a whole map: only the line memory of the window unit, its ``kh x kw`` window
registers and the MVTU's input buffer.

**Padding** (``pad = p > 0``): a :class:`~bnnflow.hw.pad.PadMap` in front of the window unit
borders the map with ``p`` rows and columns of the pad code (in every channel), so the window
unit works on the ``(H + 2p) x (W + 2p)`` map (``layer.padded_shape``) and the layer takes
``(H + 2p)(W + 2p)`` cycles per map at least; ``H`` and ``W`` below are those of that map.
Without padding there is no pad unit: the design is the one of an unpadded layer.

**Pad queue.** The pad unit takes no input while it sends border pixels: ``2p (Wp + 1)`` of them
in a row between two maps (``Wp = W + 2p``). Behind a slower layer, which sends a pixel every
``P > 1`` cycles, that would stop the slower layer for most of this run every map and cost
the network its II (a 5x6 map padded by 2, then a pad-1 conv behind a 168-cycle layer: 186
cycles per map). So a FIFO of ``ceil(2p (Wp + 1) / P) + 1`` pixels (:func:`pad_queue_depth`)
takes those pixels meanwhile; at ``P = 1`` (the first layer, or behind layers faster than
this one's ``H * W`` input pixels) there is none: the border cycles are the layer's own.

**Window queue.** Between two maps the window unit takes ``(kh - 1) * W + kw`` pixels before it has
the next window (with a stride ``s``, also the pixels past the last whole window), and between rows
``kw`` (``s * (W - Wo + 1)``); ``gap`` is the longest of these (:func:`window_gap`). A folded MVTU
working ``M`` cycles per window would idle meanwhile and the layer would miss its cycle count, so
the windows wait in a FIFO (:class:`amaranth.lib.fifo.SyncFIFOBuffered`, memory) of ``ceil(gap * P /
M) + 2`` entries, ``P`` the cycles per pixel the layers before can deliver
(:attr:`bnnflow.hw.units.UnitOptions.pixel_period`): the window unit runs that far ahead, and the
MVTU has work through the gap. Without it a 10x10 map with a 3x3 kernel at ``M = 3`` took 212 cycles
per map instead of 192.

The unit interface is the one of :mod:`bnnflow.hw.units`; ``cycles`` is the layer's cycles per
map (:meth:`bnnflow.model.conv.Conv2dLayer.cycles`, ``Ho * Wo * ceil(Cout/PE) *
ceil(K/SIMD)``, but at least the ``H * W`` cycles of taking its input, one pixel a cycle).
"""

import math

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.kinds import matrix_cycles
from .folding import pixel_window_misfit, row_window_misfit, rows_pay
from .mvtu import MVTU
from .pad import PadMap, border_pixel
from .pixel_window import PixelWindow
from .row_window import RowWindow
from .window import SlidingWindow

__all__ = ["ConvUnit", "window_queue_depth", "window_gap", "pad_queue_depth", "pixel_period",
           "window_kind", "WINDOW_KINDS", "WINDOW_UNITS"]

#: How a conv layer's windows reach its MVTU (:func:`window_kind`).
WINDOW_KINDS = ("registers", "pixels", "rows")

#: The unit of each window kind; "pixels" and "rows" read windows out of a ring of rows.
WINDOW_UNITS = {"registers": SlidingWindow, "pixels": PixelWindow, "rows": RowWindow}

_READ_AS = {"pixels": ("a pixel a cycle", pixel_window_misfit),
            "rows": ("a window row a cycle", row_window_misfit)}


def window_kind(layer, fold, kind=None):
    """How the MVTU of ``layer`` folded as ``fold`` gets its windows: ``"pixels"`` when it can
    take them a pixel a cycle from a :class:`~bnnflow.hw.pixel_window.PixelWindow` without
    slowing down (:func:`bnnflow.hw.folding.pixel_window_misfit`), else ``"rows"`` when it can
    take them a window row a cycle from a :class:`~bnnflow.hw.row_window.RowWindow` (a faster
    MVTU) and the window is large enough for that to pay (:func:`bnnflow.hw.folding.rows_pay`),
    else ``"registers"`` (a :class:`~bnnflow.hw.window.SlidingWindow` and a window queue).
    ``kind`` asks for one (``"rows"`` whenever it can be built).

    Raises
    ------
    ValueError
        If ``kind`` is not ``None`` or one of :data:`WINDOW_KINDS`, or is ``"pixels"`` or
        ``"rows"`` for a fold that cannot take them (the message says why).
    """
    if kind not in (None, *WINDOW_KINDS):
        raise ValueError(f"window must be one of {', '.join(WINDOW_KINDS)} or None, not "
                         f"{kind!r}")
    if kind is None:
        if pixel_window_misfit(layer, fold) is None:
            return "pixels"
        return "rows" if rows_pay(layer, fold) else "registers"
    if kind in _READ_AS:
        what, misfit = _READ_AS[kind]
        why = misfit(layer, fold)
        if why is not None:
            raise ValueError(f"{layer.name}: folding {fold} cannot take its windows {what}: "
                             f"{why}")
    return kind


def window_gap(layer):
    """The most input pixels a conv layer's window unit takes from one window to the next:
    within a row ``s``, from a row's last window to the next row's first ``s * (W - Wo + 1)``,
    from a map's last window to the next map's first the rest of the map and ``(kh - 1) * W +
    kw`` (``s`` the stride, ``Wo`` the windows per row; ``H x W`` the padded map the window unit
    sees, :attr:`~bnnflow.model.conv.Conv2dLayer.padded_shape`)."""
    (h, w, _), (kh, kw), s = layer.padded_shape, layer.kernel, layer.stride
    ho, wo = layer.out_shape[:2]
    last_r, last_c = (ho - 1) * s + kh - 1, (wo - 1) * s + kw - 1
    between_maps = (h - 1 - last_r) * w + (w - 1 - last_c) + (kh - 1) * w + kw
    return max(s, s * (w - wo + 1), between_maps)


def window_queue_depth(layer, fold, period=1):
    """Windows the queue of a conv layer folded as ``fold`` holds when its input pixels come
    every ``period`` cycles at best: ``ceil(gap * period / M) + 2`` (module docstring)."""
    m = matrix_cycles(layer.fan_in, layer.neurons, fold)
    return math.ceil(window_gap(layer) * period / m) + 2


def pad_queue_depth(layer, period=1):
    """Pixels the queue in front of a padded conv layer's pad unit holds when its input pixels
    come every ``period`` cycles at best: ``ceil(B / period) + 1`` for ``B = 2p (Wp + 1)``, the
    longest run of border pixels (the right border of a map's last row, the bottom and the next
    map's top border, the left border of its first row), during which the pad unit takes no
    input; 0 (no queue) without padding or at one pixel a cycle (module docstring)."""
    if not layer.pad or period <= 1:
        return 0
    border = 2 * layer.pad * (layer.padded_shape[1] + 1)
    return math.ceil(border / period) + 1


def pixel_period(model, folding, j):
    """Cycles per input pixel the layers before layer ``j`` sustain: the slowest of them
    spread over layer ``j``'s input pixels (1 for the first layer and for layers without an
    input map)."""
    layer = model.layers[j]
    if j == 0 or not hasattr(layer, "in_shape"):
        return 1
    slowest = max(prev.cycles(fold) for prev, fold in zip(model.layers[:j], folding,
                                                          strict=False))
    return max(1, -(-slowest // (layer.in_shape[0] * layer.in_shape[1])))


class ConvUnit(wiring.Component):
    """A conv layer (``binary_conv2d`` or ``ternary_conv2d``) as a streaming unit.

    Parameters
    ----------
    layer : Conv2dLayer or TernaryConv2dLayer
        With ``in_bits = n`` a pixel is ``Cin`` elements of ``n`` bits, element ``c`` at bits
        ``[c * n, (c + 1) * n)``; the window unit handles it as ``Cin * n`` bit-channels and
        the MVTU takes ``n``-bit inputs (one popcount tree per bit plane). A ternary layer's
        mask goes to the MVTU.
    fold : LayerFold
        ``PE`` divides the work over output channels, ``SIMD`` over window bits.
    options : UnitOptions
        Pipeline, popcount style and ROM register of the MVTU; the stream options must be
        pixels in and out (``in_chunk`` the layer's ``Cin`` or ``None``).

    Members
    -------
    i : In(stream.Signature(Cin * in_bits))
        One input pixel per transfer.
    o : Out(stream.Signature(Cout * A))
        One output pixel per transfer, ``Ho * Wo`` per map; ``A``-bit activations, channel
        ``c`` at bits ``[c * A, (c + 1) * A)``.

    Attributes
    ----------
    pad : PadMap or None
        The padding unit of a padded layer (``None`` without padding).
    window : SlidingWindow, PixelWindow or RowWindow
        On the padded map, as :attr:`window_kind` says.
    window_kind : str
        ``"registers"``, ``"pixels"`` or ``"rows"`` (:func:`window_kind`).
    mvtu : MVTU
    cycles : int
        ``max(Hp * Wp, Ho * Wo * mvtu.cycles)``, ``Hp x Wp`` the padded map.
    queue_depth : int
        Windows the queue between the window unit and the MVTU holds.
    pad_queue_depth : int
        Pixels the queue in front of the pad unit holds (0: no queue).
    latency : int
        Edges from the pixel completing a window to the window's output pixel when the queue
        is empty and the MVTU idle: ``window.latency + 1 + mvtu.accept_wait + mvtu.latency``
        (the queue's output register adds 1; a pixel or row window has no queue and no 1),
        plus ``pad.latency`` (1) with padding (counted from the pad unit's input).
    accept_wait : int
        0: pixels are taken as they come.
    out_width, lane_width : int
        ``Ho * Wo * Cout * A`` bits per map, ``A`` bits per element (the activation bits).

    Raises
    ------
    ValueError
        If ``options.in_chunk`` asks for anything but pixels.
    """

    accept_wait = 0

    def __init__(self, layer, fold, options):
        h, w, cin = layer.in_shape
        pixel = cin * layer.in_bits
        hp, wp, _ = layer.padded_shape
        if options.in_chunk not in (None, pixel):
            raise ValueError(f"{layer.name}: a conv layer takes one pixel ({pixel} bits) per "
                             f"transfer, not {options.in_chunk}")
        self.layer, self.fold = layer, fold
        # n-bit elements: a map of Cin * n bit-channels, so each window is (kh, kw, Cin)
        # elements of n bits, the order the MVTU's bit planes read.
        self.pad = None
        if layer.pad:
            self.pad = PadMap((h, w), layer.pad, pixel,
                              border_pixel(layer.pad_value, cin, layer.in_bits))
        self.pad_queue_depth = pad_queue_depth(layer, options.pixel_period)
        self.window_kind = window_kind(layer, fold, options.window)
        read = self.window_kind != "registers"      # windows read out of a ring of rows
        self.window = WINDOW_UNITS[self.window_kind]((hp, wp, pixel), layer.kernel, layer.stride)
        self.mvtu = MVTU(layer.weights, layer.thresholds, fold, options.pipeline,
                         popcount_style=options.popcount_style,
                         rom_register=options.rom_register, mask=getattr(layer, "mask", None),
                         in_bits=layer.in_bits,
                         in_chunk=len(self.window.o.payload) if read else None)
        self.cycles = max(hp * wp, self.window.windows * self.mvtu.cycles)
        # A window reader's ring of rows is its queue; the queue's output register adds an edge.
        self.queue_depth = 0 if read else window_queue_depth(layer, fold, options.pixel_period)
        self.latency = (self.window.latency + (0 if read else 1) + self.mvtu.accept_wait
                        + self.mvtu.latency + (self.pad.latency if self.pad else 0))
        # n-bit activations: Cout levels of n bits per output pixel.
        self.lane_width = self.mvtu.lane_width
        self.out_width = layer.out_width * self.lane_width
        super().__init__({"i": In(stream.Signature(pixel)),
                          "o": Out(stream.Signature(layer.neurons * self.lane_width))})

    @classmethod
    def from_layer(cls, layer, fold, options):
        """The unit of a ``binary_conv2d`` or ``ternary_conv2d`` layer
        (:data:`bnnflow.hw.units.UNITS`)."""
        return cls(layer, fold, options)

    @staticmethod
    def out_chunk(layer, fold):
        """Always one output pixel (``Cout`` activations of ``A`` bits) per transfer."""
        return layer.neurons * layer.activation_bits

    @staticmethod
    def in_chunk(layer, fold):
        """Always one input pixel (``Cin * in_bits`` bits) per transfer."""
        return layer.in_shape[2] * layer.in_bits

    @staticmethod
    def takes_chunk(layer, fold, width):
        """Pixels only."""
        return width == layer.in_shape[2] * layer.in_bits

    def sidecar(self):
        """The MVTU's entries, and the window unit's line memory and map shapes (``pad``,
        ``pad_value`` and ``pad_queue_depth`` only with padding)."""
        layer = self.layer
        return {**self.mvtu.sidecar(), "in_shape": list(layer.in_shape),
                "out_shape": list(layer.out_shape), "kernel": list(layer.kernel),
                **({"stride": layer.stride} if layer.stride != 1 else {}),
                **({"pad": layer.pad, "pad_value": layer.pad_value,
                    "pad_queue_depth": self.pad_queue_depth} if layer.pad else {}),
                "window_cycles": self.mvtu.cycles, "window": self.window_kind,
                **({"ring_rows": self.window.rows} if self.window_kind != "registers"
                   else {}),
                "line_bits": self.window.line_bits, "queue_depth": self.queue_depth,
                "queue_bits": self.queue_depth * len(self.window.o.payload)}

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self.window
        m.submodules.mvtu = self.mvtu
        if self.pad is None:
            wiring.connect(m, wiring.flipped(self.i), self.window.i)
        else:
            m.submodules.pad = self.pad
            wiring.connect(m, self.pad.o, self.window.i)
            if self.pad_queue_depth:
                m.submodules.pad_queue = pq = fifo.SyncFIFOBuffered(
                    width=len(self.i.payload), depth=self.pad_queue_depth)
                wiring.connect(m, wiring.flipped(self.i), pq.w_stream)
                wiring.connect(m, pq.r_stream, self.pad.i)
            else:
                wiring.connect(m, wiring.flipped(self.i), self.pad.i)
        if self.queue_depth:
            m.submodules.queue = queue = fifo.SyncFIFOBuffered(
                width=len(self.window.o.payload), depth=self.queue_depth)
            wiring.connect(m, self.window.o, queue.w_stream)
            wiring.connect(m, queue.r_stream, self.mvtu.i)
        else:
            wiring.connect(m, self.window.o, self.mvtu.i)
        wiring.connect(m, self.mvtu.o, wiring.flipped(self.o))
        return m
