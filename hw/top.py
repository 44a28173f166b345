# amaranth: UnusedElaboratable=no
"""Network top: every layer of a ``.bnn`` model as a chain of streaming units, then argmax.

::

    i --> unit 0 --> unit 1 --> ... --> unit L-1 (popcounts) --> Argmax --> o

Each layer's unit comes from its kind's entry in :data:`bnnflow.hw.units.UNITS` (an
:class:`~bnnflow.hw.mvtu.MVTU` for ``binary_dense`` layers). Each MVTU buffers its next input
vector while it works on the current one (see :mod:`bnnflow.hw.mvtu`), so in steady state the
network runs at the II of its slowest layer, ``ii = max_j cycles_j``, with no bubbles. The
latency of an image entering an idle network (input transfer at edge ``t``, output transfer at
edge ``t + latency``, ``o.ready`` high) is ``latency = sum_j latency_j + sum_{j>0} wait_j + 1 +
a``: for an MVTU ``latency_j = cycles_j + rom_j + pipeline + 1``, ``rom_j = 1`` for folded
layers (weights in ROM), ``0`` for fully parallel ones; ``wait_j`` is layer ``j``'s
``accept_wait`` (a whole vector copied into its input memory, :mod:`bnnflow.hw.inbuf`; ``0``
when the previous layer sends its neuron folds straight in, :func:`layer_chunks`); the ``+ 1``
is the argmax output register and
``a = min(pipeline, ceil(log2(C)) - 1)`` (at least 0) the argmax's inner register stages, which
``pipeline`` also sets.

A network with conv or pool layers has no such sum: windows queue in front of a folded conv
layer and the window unit stops taking pixels while its queue is full, so the first image's
timing depends on how its pixels arrive. Its latency (from the transfer of the image's last
pixel) comes from the cycle model of the units' handshakes, :func:`bnnflow.hw.timing.
stream_latency`, run when first asked for; for MLPs that model gives the sum above.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .. import __version__
from ..model.artifact import model_checksum
from .argmax import Argmax, argmax_levels, class_width
from .conv import pixel_period
from .folding import resolve_folding
from .popcount import DEFAULT_STYLE
from .units import UnitOptions, build_unit, unit_kind

__all__ = ["BnnTop", "BIT_ORDER", "layer_chunks"]

BIT_ORDER = ("i__payload bit j = input element j (image pixels flattened row-major, LSB = "
             "pixel 0; with a pixel input_layout, bit ch of transfer p = channel ch of pixel "
             "p); o__payload bits [0, cw) = class index, then the popcount of class c "
             "at bits [cw + c*pw, cw + (c+1)*pw), unsigned; tap_<j>_data bit n = activation "
             "of neuron n of hidden layer j, the last layer's tap packs popcounts like o")


def layer_chunks(model, folding):
    """``[(in_chunk, out_chunks)]`` per layer: how each stream between layers is cut.

    A layer whose unit can send its output in chunks as it computes them
    (:attr:`bnnflow.hw.units.UnitKind.out_chunk`; an MVTU with several neuron folds: each fold's
    ``PE`` activation bits) does so when the next unit can take chunks of that width
    (:attr:`~bnnflow.hw.units.UnitKind.takes_chunk`; an MVTU's memory-held input buffer,
    :func:`bnnflow.hw.inbuf.chunk_fits`); otherwise it sends the whole vector. Conv and pool
    units always stream pixels (:attr:`~bnnflow.hw.units.UnitKind.pixels`): they take one
    input pixel per transfer, the first layer included, and the next unit must take their
    pixels. The last layer sends whole popcount vectors to the argmax.

    Raises
    ------
    ValueError
        If a layer's kind has no hardware unit (:func:`bnnflow.hw.units.unit_kind`), or a
        layer cannot take the pixels of a conv or pool layer before it (the message names the
        folding that would).
    """
    layers = model.layers
    kinds = [unit_kind(layer, f"layer {j}") for j, layer in enumerate(layers)]
    # Whole vectors: in_width elements of in_bits bits each (n-bit activations of the layer
    # before).
    out = [[kind.in_chunk(layer, fold) or layer.in_width * layer.in_bits, False]
           for kind, layer, fold in zip(kinds, layers, folding, strict=True)]
    for j in range(len(layers) - 1):
        width = kinds[j].out_chunk(layers[j], folding[j])
        nxt = layers[j + 1]
        if width is not None and kinds[j + 1].takes_chunk(nxt, folding[j + 1], width):
            out[j][1] = True
            out[j + 1][0] = width
        elif kinds[j].pixels:
            # SIMD counts input elements: a pixel of n-bit levels is width / n of them.
            elements = width // nxt.in_bits
            what = (f"{width}-bit pixels" if nxt.in_bits == 1 else
                    f"pixels of {elements} {nxt.in_bits}-bit levels")
            raise ValueError(f"layer {j + 1} ({nxt.name}) cannot take the {what} of layer "
                             f"{j} ({layers[j].name}) with folding {folding[j + 1]}: a dense "
                             f"layer after a map needs SIMD a multiple of {elements} and below "
                             f"its {nxt.in_width} inputs, or all {nxt.in_width}")
    return [tuple(x) for x in out]


def _check_fault(fault, layers):
    """``ValueError`` unless ``fault`` is ``("drop_ready", j)`` (the stream after layer ``j``
    ignores its consumer's ready) or ``("swap_output", a, b)`` (bits ``a`` and ``b`` of the
    output payload exchanged): faults injected to show that the checkers fail."""
    ok = isinstance(fault, tuple) and len(fault) >= 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in fault[1:])
    if ok and fault[0] == "drop_ready":
        ok = len(fault) == 2 and fault[1] < layers
    elif ok and fault[0] == "swap_output":
        ok = len(fault) == 3 and fault[1] != fault[2]
    else:
        ok = False
    if not ok:
        raise ValueError(f"fault must be None, ('drop_ready', j) with j in 0..{layers - 1} or "
                         f"('swap_output', a, b) with output bits a != b (drop_ready:J or "
                         f"swap_output:A,B on the command line), not {fault_text(fault)}")


def fault_text(fault):
    """A fault as the command line writes it (``drop_ready:3``, ``swap_output:0,9``), or its
    ``repr`` when it has no such form."""
    if (isinstance(fault, tuple) and len(fault) >= 2 and isinstance(fault[0], str)
            and all(isinstance(v, int) for v in fault[1:])):
        return f"{fault[0]}:{','.join(map(str, fault[1:]))}"
    return repr(fault)


class BnnTop(wiring.Component):
    """A whole binarized network as one streaming component.

    Parameters
    ----------
    model : BnnModel
        Hidden layers with binary activations (``T = 1``), the last layer emitting popcounts.
    folding : None, str or sequence of LayerFold / (pe, simd)
        As :func:`bnnflow.hw.folding.resolve_folding`; ``None`` is fully parallel.
    pipeline : int
        Register stages in each popcount adder tree (``>= 0``); the argmax tournament gets
        ``min(pipeline, ceil(log2(C)) - 1)`` inner register stages.
    popcount_style : str
        Popcount tree structure of every MVTU (:class:`bnnflow.hw.mvtu.MVTU`).
    rom_register : bool
        Weight register after the ROM of every folded layer (:class:`bnnflow.hw.mvtu.MVTU`;
        same latency either way).
    window : str or None
        How every conv layer's windows reach its MVTU (``"registers"`` or ``"pixels"``,
        :data:`bnnflow.hw.conv.WINDOW_KINDS`); ``None`` lets each layer's folding choose
        (:func:`bnnflow.hw.conv.window_kind`).
    debug_taps : bool
        Add ``tap_<j>_valid`` / ``tap_<j>_data`` outputs per layer (no effect on timing).
    fault : None, ("drop_ready", j) or ("swap_output", a, b)
        Tests only: the stream after layer ``j`` ignores its consumer's ready, or bits ``a``
        and ``b`` of ``o.payload`` are exchanged.

    Members
    -------
    i : In(stream.Signature(K0)) or In(stream.Signature(C))
        One image's input bits per transfer, bit ``j`` = input element ``j``; for a network
        that starts with a conv or pool layer, one pixel of the channels-last input map per
        transfer (``H * W`` per image, :meth:`input_layout`).
    o : Out(stream.Signature(cw + C * pw))
        Class index in bits ``[0, cw)``, ``cw = max(1, ceil(log2(C)))``; popcount of class
        ``c`` at ``[cw + c*pw, cw + (c+1)*pw)``, ``pw = bits_for(K_last)``.
    tap_<j>_valid : Out(1)
        With ``debug_taps``: high in the cycle layer ``j``'s output vector transfers on.
    tap_<j>_data : Out(N_j or N_last * pw or C_j)
        With ``debug_taps``: layer ``j``'s output vector (activation bits, or the last layer's
        popcounts packed like ``o``'s popcount field); for a conv or pool layer, each output
        pixel as it transfers.

    Attributes
    ----------
    ii : int or float
        Cycles between outputs in steady state: ``max_j cycles_j`` (``unit_ii``) for an MLP;
        for a network with conv or pool layers, the mean spacing of outputs in the second half
        of :data:`~bnnflow.hw.timing.TIMING_IMAGES` images fed back to back, by
        :func:`bnnflow.hw.timing.stream_timing` (at least ``unit_ii``; more when a layer behind
        a pool falls behind its bursts).
    unit_ii : int
        ``max_j cycles_j``, the slowest layer's cycles per image.
    latency : int
        ``sum_j (cycles_j + rom_j + pipeline + 1) + 1 + argmax_stages`` (see module
        docstring); for a network with conv or pool layers, edges from the first image's last
        input pixel to its output by :func:`bnnflow.hw.timing.stream_timing`.
    argmax_stages : int
        Inner register stages of the argmax, ``min(pipeline, ceil(log2(C)) - 1)``.
    folding : list of LayerFold
    layers : list of units
        One per layer, built by its kind's :data:`bnnflow.hw.units.UNITS` entry
        (:class:`~bnnflow.hw.mvtu.MVTU` for ``binary_dense``); the unit interface is documented
        in :mod:`bnnflow.hw.units`.

    Raises
    ------
    ValueError
        Bad folding, pipeline or fault; hidden layers with more than one threshold per neuron;
        a layer kind without a hardware unit.
    TypeError
        ``rom_register`` not a bool.
    """

    def __init__(self, model, folding=None, pipeline=0, *, debug_taps=False, fault=None,
                 popcount_style=DEFAULT_STYLE, rom_register=False, window=None):
        try:
            self._build(model, folding, pipeline, debug_taps, fault, popcount_style,
                        rom_register, window)
        except Exception:
            # A design refused while it is built was not left unused: no warning when it goes.
            self._MustUse__used = True
            raise

    def _build(self, model, folding, pipeline, debug_taps, fault, popcount_style, rom_register,
               window):
        self.model = model
        self.folding = resolve_folding(model, folding)
        for j, layer in enumerate(model.layers[:-1]):
            nxt = model.layers[j + 1]
            # n-bit activations feed a layer that takes n-bit inputs (the MVTU's bit planes,
            # a conv unit's window bit-channels, a pool unit's per-element maximum).
            if layer.is_output or layer.activation_bits != nxt.in_bits:
                raise ValueError(f"layer {j} ({layer.name}): its {layer.activation_bits!r}-bit "
                                 f"activations must feed a layer taking that many bits per "
                                 f"input")
        if not model.layers[-1].is_output:
            raise ValueError("the last layer must output popcounts (no thresholds)")
        if isinstance(fault, list):
            fault = tuple(fault)
        if fault is not None:
            _check_fault(fault, len(model.layers))
        self.pipeline = pipeline
        self.popcount_style = popcount_style
        self.debug_taps = bool(debug_taps)
        self.fault = fault
        chunks = layer_chunks(model, self.folding)
        self.layers = [build_unit(layer, fold,
                                  UnitOptions(pipeline, popcount_style, rom_register, chunk_in,
                                              chunk_out, pixel_period(model, self.folding, j),
                                              window if unit_kind(layer).pixels else None),
                                  f"layer {j}")
                       for j, (layer, fold, (chunk_in, chunk_out))
                       in enumerate(zip(model.layers, self.folding, chunks, strict=True))]
        # Conv networks take their input map one pixel per transfer (input_layout).
        self.in_chunk = chunks[0][0]
        self.pixels = [unit_kind(layer).pixels for layer in model.layers]
        last = self.layers[-1]
        self.num_classes = model.num_classes
        self.class_width = class_width(self.num_classes)
        self.popcount_width = last.lane_width
        self.out_width = self.class_width + last.out_width
        if fault is not None and fault[0] == "swap_output" and max(fault[1:]) >= self.out_width:
            raise ValueError(f"fault {fault_text(fault)}: the output has bits "
                             f"0..{self.out_width - 1}")
        self.argmax_stages = max(0, min(pipeline, argmax_levels(self.num_classes) - 1))
        self.unit_ii = max(unit.cycles for unit in self.layers)
        self._ii = self.unit_ii
        # The first layer's accept_wait passes before the input transfer, so it is not counted.
        self._latency = (sum(unit.latency for unit in self.layers)
                         + sum(unit.accept_wait for unit in self.layers[1:])
                         + 1 + self.argmax_stages)
        if any(self.pixels):
            # A map's windows queue in front of a folded conv layer, and pools pass pixels in
            # bursts, so latency and II depend on how the pixels arrive: the cycle model of the
            # handshakes gives both (when asked).
            self._latency = self._ii = None
        members = {"i": In(stream.Signature(self.in_chunk)),
                   "o": Out(stream.Signature(self.out_width))}
        if self.debug_taps:
            for j in range(len(self.layers)):
                members[f"tap_{j}_valid"] = Out(1)
                members[f"tap_{j}_data"] = Out(self._tap_width(j))
        super().__init__(members)

    @property
    def latency(self):
        """Edges from an image's (last) input transfer to its output in an idle network (see
        the class docstring)."""
        if self._latency is None:
            self._model_timing()
        return self._latency

    @property
    def ii(self):
        """Cycles between outputs in steady state (see the class docstring)."""
        if self._ii is None:
            self._model_timing()
        return self._ii

    def _model_timing(self):
        from .timing import stream_timing

        self._latency, self._ii = stream_timing(self)

    def _tap_width(self, j):
        """A conv or pool layer's tap shows each output pixel as it transfers; other layers'
        taps show whole vectors."""
        unit = self.layers[j]
        return len(unit.o.payload) if self.pixels[j] else unit.out_width

    def elaborate(self, platform):
        m = Module()
        for j, unit in enumerate(self.layers):
            m.submodules[f"layer_{j}"] = unit
        m.submodules.argmax = argmax = Argmax(self.num_classes, self.popcount_width,
                                                 self.argmax_stages)
        wiring.connect(m, wiring.flipped(self.i), self.layers[0].i)
        consumers = [unit.i for unit in self.layers[1:]] + [argmax.i]
        for j, (unit, consumer) in enumerate(zip(self.layers, consumers, strict=True)):
            if self.fault == ("drop_ready", j):
                m.d.comb += [consumer.valid.eq(unit.o.valid),
                             consumer.payload.eq(unit.o.payload),
                             unit.o.ready.eq(1)]
            else:
                wiring.connect(m, unit.o, consumer)
            if self.debug_taps:
                self._tap(m, j, unit)
        if self.fault is not None and self.fault[0] == "swap_output":
            # Two bits of the output payload exchanged (a fault for the checkers' tests).
            a, b = self.fault[1:]
            bits = list(argmax.o.payload)
            bits[a], bits[b] = bits[b], bits[a]
            m.d.comb += [self.o.valid.eq(argmax.o.valid), self.o.payload.eq(Cat(*bits)),
                         argmax.o.ready.eq(self.o.ready)]
        else:
            wiring.connect(m, argmax.o, wiring.flipped(self.o))
        return m

    def _tap(self, m, j, unit):
        """Layer ``j``'s output vector on ``tap_<j>_*`` when it transfers; chunked outputs are
        collected here (debug builds only), the last chunk completing the vector."""
        fire = unit.o.valid & unit.o.ready
        valid, data = getattr(self, f"tap_{j}_valid"), getattr(self, f"tap_{j}_data")
        width = len(unit.o.payload)
        chunks = -(-unit.out_width // width)
        if chunks == 1 or self.pixels[j]:
            m.d.comb += [valid.eq(fire), data.eq(unit.o.payload)]
            return
        held = Signal((chunks - 1) * width, name=f"tap_{j}_held")
        count = Signal(range(chunks), name=f"tap_{j}_count")
        last = count == chunks - 1
        with m.If(fire):
            m.d.sync += [held.eq(Cat(held[width:], unit.o.payload)),
                         count.eq(Mux(last, 0, count + 1))]
        m.d.comb += [valid.eq(fire & last), data.eq(Cat(held, unit.o.payload))]

    def port_widths(self):
        """``{verilog port name: {"direction": "in"|"out", "width": w}}``."""
        ports = {"clk": ("in", 1), "rst": ("in", 1),
                 "i__payload": ("in", self.in_chunk), "i__valid": ("in", 1),
                 "i__ready": ("out", 1),
                 "o__payload": ("out", self.out_width), "o__valid": ("out", 1),
                 "o__ready": ("in", 1)}
        if self.debug_taps:
            for j in range(len(self.layers)):
                ports[f"tap_{j}_valid"] = ("out", 1)
                ports[f"tap_{j}_data"] = ("out", self._tap_width(j))
        return {name: {"direction": d, "width": w} for name, (d, w) in ports.items()}

    def input_layout(self):
        """How an image enters ``i``: one transfer of the whole input vector, or (conv
        networks) a pixel stream, one channels-last pixel of ``C`` elements per transfer, rows
        top to bottom. ``width`` counts bits: with 8-bit pixels (``element_bits`` 8) the vector
        is ``K0 * 8`` bits, element ``j`` at ``[8j, 8j + 8)``, and a pixel ``C * 8`` bits."""
        bits = self.model.input.bits
        width = self.model.input.width * bits
        if self.in_chunk == width:
            layout = {"kind": "vector", "width": width, "transfers": 1}
            if bits != 1:
                layout["element_bits"] = bits
            return layout
        from .timing import needed_pixels

        h, w, c = self.model.input.map_shape
        layout = {"kind": "pixels", "shape": [h, w, c], "width": c * bits, "transfers": h * w,
                  "needed": needed_pixels(self.model)}
        if bits != 1:
            layout["element_bits"] = bits
        return layout

    def sidecar(self, name="bnnflow_top"):
        """The ``OUT.json`` contents describing the generated module."""
        manifest, _ = self.model.manifest()
        layers = []
        for layer, fold, unit in zip(self.model.layers, self.folding, self.layers, strict=True):
            entry = {
                "name": layer.name, "kind": layer.kind, "in_width": layer.in_width,
                "out_width": layer.out_width, "pe": fold.pe, "simd": fold.simd,
                "cycles": unit.cycles, "weight_bits": layer.weight_bits,
                "synapses": layer.synapses,
                "output": "popcount" if layer.is_output else "activation",
                "latency": unit.latency,
                "in_chunk": len(unit.i.payload), "out_chunk": len(unit.o.payload),
                "accept_wait": unit.accept_wait,
            }
            # What only this kind's unit knows (for an MVTU: padding, weights, input buffer).
            entry.update(unit.sidecar())
            layers.append(entry)
        taps = []
        if self.debug_taps:
            for j, unit in enumerate(self.layers):
                last = j == len(self.layers) - 1
                layer = self.model.layers[j]
                kind = "pixels" if self.pixels[j] else "popcounts" if last else "activations"
                taps.append({"layer": j, "name": layer.name,
                             "valid": f"tap_{j}_valid", "data": f"tap_{j}_data",
                             "width": self._tap_width(j), "kind": kind,
                             # Pixel taps: transfers per image; vector taps: elements.
                             "count": layer.output_pixels if self.pixels[j]
                             else layer.out_width,
                             "element_width": unit.lane_width})
        return {
            "top": name,
            "ports": self.port_widths(),
            "bit_order": BIT_ORDER,
            "input_layout": self.input_layout(),
            "output_layout": {
                "class": {"lsb": 0, "width": self.class_width},
                "popcounts": {"lsb": self.class_width, "width": self.popcount_width,
                              "count": self.num_classes}},
            "layers": layers,
            "folding": ",".join(str(f) for f in self.folding),
            "ii": self.ii,
            "latency": self.latency,
            "argmax_stages": self.argmax_stages,
            "pipeline": self.pipeline,
            "popcount_style": self.popcount_style,
            "model_checksum": model_checksum(manifest),
            "taps": taps,
            "fault": list(self.fault) if self.fault else None,
            "bnnflow_version": __version__,
        }
