# amaranth: UnusedElaboratable=no
"""Network top: every layer of a ``.bnn`` model as a chain of streaming MVTUs, then argmax.

::

    i --> MVTU 0 --> MVTU 1 --> ... --> MVTU L-1 (popcounts) --> Argmax --> o

Each MVTU buffers its next input vector while it works on the current one (see
:mod:`bnnflow.hw.mvtu`), so in steady state the network runs at the II of its slowest layer,
``ii = max_j cycles_j``, with no bubbles. The latency of an image entering an idle network
(input transfer at edge ``t``, output transfer at edge ``t + latency``, ``o.ready`` high) is
``latency = sum_j (cycles_j + rom_j + pipeline + 1) + sum_{j>0} wait_j + 1 + a``, ``rom_j = 1``
for folded layers (weights in ROM), ``0`` for fully parallel ones; ``wait_j`` is layer ``j``'s
``accept_wait`` (a whole vector copied into its input memory, :mod:`bnnflow.hw.inbuf`; ``0``
when the previous layer sends its neuron folds straight in, :func:`layer_chunks`); the ``+ 1``
is the argmax output register and
``a = min(pipeline, ceil(log2(C)) - 1)`` (at least 0) the argmax's inner register stages, which
``pipeline`` also sets.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .. import __version__
from ..model.artifact import model_checksum
from .argmax import Argmax, argmax_levels, class_width
from .folding import resolve_folding
from .inbuf import chunk_fits
from .mvtu import MVTU
from .popcount import DEFAULT_STYLE

__all__ = ["BnnTop", "BIT_ORDER", "layer_chunks"]

BIT_ORDER = ("i__payload bit j = input element j (image pixels flattened row-major, LSB = "
             "pixel 0); o__payload bits [0, cw) = class index, then the popcount of class c "
             "at bits [cw + c*pw, cw + (c+1)*pw), unsigned; tap_<j>_data bit n = activation "
             "of neuron n of hidden layer j, the last layer's tap packs popcounts like o")


def layer_chunks(model, folding):
    """``[(in_chunk, out_chunks)]`` per layer: how each stream between layers is cut.

    A hidden layer with several neuron folds sends each fold's ``PE`` activation bits as they
    are computed (``out_chunks``), straight into the next layer's memory-held input buffer,
    when that buffer can take chunks of that width (:func:`bnnflow.hw.inbuf.chunk_fits`);
    otherwise it collects the whole vector first. The first layer gets whole input vectors;
    the last one sends whole popcount vectors to the argmax.
    """
    out = [[layer.in_width, False] for layer in model.layers]
    for j in range(len(model.layers) - 1):
        producer, fold = model.layers[j], folding[j]
        width = fold.pe * producer.activation_bits
        nxt = folding[j + 1]
        k = model.layers[j + 1].in_width
        if (fold.pe < producer.out_width and nxt.simd < k
                and chunk_fits(k, nxt.simd, width)):
            out[j][1] = True
            out[j + 1][0] = width
    return [tuple(x) for x in out]


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
        Popcount tree structure of every layer (:class:`bnnflow.hw.mvtu.MVTU`).
    rom_register : bool
        Weight register after the ROM of every folded layer (:class:`bnnflow.hw.mvtu.MVTU`;
        same latency either way).
    debug_taps : bool
        Add ``tap_<j>_valid`` / ``tap_<j>_data`` outputs per layer (no effect on timing).
    fault : None or ("drop_ready", j)
        Tests only: the stream after layer ``j`` ignores its consumer's ready.

    Members
    -------
    i : In(stream.Signature(K0))
        One image's input bits per transfer; bit ``j`` = input element ``j``.
    o : Out(stream.Signature(cw + C * pw))
        Class index in bits ``[0, cw)``, ``cw = max(1, ceil(log2(C)))``; popcount of class
        ``c`` at ``[cw + c*pw, cw + (c+1)*pw)``, ``pw = bits_for(K_last)``.
    tap_<j>_valid : Out(1)
        With ``debug_taps``: high in the cycle layer ``j``'s output vector transfers on.
    tap_<j>_data : Out(N_j or N_last * pw)
        With ``debug_taps``: layer ``j``'s output vector (activation bits, or the last layer's
        popcounts packed like ``o``'s popcount field).

    Attributes
    ----------
    ii : int
        Cycles between outputs in steady state, ``max_j cycles_j``.
    latency : int
        ``sum_j (cycles_j + rom_j + pipeline + 1) + 1 + argmax_stages`` (see module
        docstring).
    argmax_stages : int
        Inner register stages of the argmax, ``min(pipeline, ceil(log2(C)) - 1)``.
    folding : list of LayerFold
    layers : list of MVTU

    Raises
    ------
    ValueError
        Bad folding, pipeline or fault; hidden layers with more than one threshold per neuron.
    TypeError
        ``rom_register`` not a bool.
    """

    def __init__(self, model, folding=None, pipeline=0, *, debug_taps=False, fault=None,
                 popcount_style=DEFAULT_STYLE, rom_register=False):
        self.model = model
        self.folding = resolve_folding(model, folding)
        for j, layer in enumerate(model.layers[:-1]):
            if layer.is_output or layer.activation_bits != 1:
                raise ValueError(f"layer {j} ({layer.name}): hidden layers must have binary "
                                 f"activations (one threshold per neuron), not "
                                 f"{layer.activation_bits!r} bits")
        if not model.layers[-1].is_output:
            raise ValueError("the last layer must output popcounts (no thresholds)")
        if isinstance(fault, list):
            fault = tuple(fault)
        if fault is not None:
            if (not isinstance(fault, tuple) or len(fault) != 2 or fault[0] != "drop_ready"
                    or not isinstance(fault[1], int) or not 0 <= fault[1] < len(model.layers)):
                raise ValueError(f"fault must be None or ('drop_ready', j) with j in "
                                 f"0..{len(model.layers) - 1}, not {fault!r}")
        self.pipeline = pipeline
        self.debug_taps = bool(debug_taps)
        self.fault = fault
        chunks = layer_chunks(model, self.folding)
        self.layers = [MVTU(layer.weights, layer.thresholds, fold, pipeline,
                            popcount_style=popcount_style, rom_register=rom_register,
                            in_chunk=chunk_in, out_chunks=chunk_out)
                       for layer, fold, (chunk_in, chunk_out)
                       in zip(model.layers, self.folding, chunks, strict=True)]
        last = self.layers[-1]
        self.num_classes = last.n
        self.class_width = class_width(last.n)
        self.popcount_width = last.count_width
        self.out_width = self.class_width + last.out_width
        self.argmax_stages = max(0, min(pipeline, argmax_levels(last.n) - 1))
        self.ii = max(mvtu.cycles for mvtu in self.layers)
        # The first layer's accept_wait passes before the input transfer, so it is not counted.
        self.latency = (sum(mvtu.latency for mvtu in self.layers)
                        + sum(mvtu.accept_wait for mvtu in self.layers[1:])
                        + 1 + self.argmax_stages)
        members = {"i": In(stream.Signature(model.input.width)),
                   "o": Out(stream.Signature(self.out_width))}
        if self.debug_taps:
            for j, mvtu in enumerate(self.layers):
                members[f"tap_{j}_valid"] = Out(1)
                members[f"tap_{j}_data"] = Out(mvtu.out_width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for j, mvtu in enumerate(self.layers):
            m.submodules[f"layer_{j}"] = mvtu
        m.submodules.argmax = argmax = Argmax(self.num_classes, self.popcount_width,
                                                 self.argmax_stages)
        wiring.connect(m, wiring.flipped(self.i), self.layers[0].i)
        consumers = [mvtu.i for mvtu in self.layers[1:]] + [argmax.i]
        for j, (mvtu, consumer) in enumerate(zip(self.layers, consumers, strict=True)):
            if self.fault == ("drop_ready", j):
                m.d.comb += [consumer.valid.eq(mvtu.o.valid),
                             consumer.payload.eq(mvtu.o.payload),
                             mvtu.o.ready.eq(1)]
            else:
                wiring.connect(m, mvtu.o, consumer)
            if self.debug_taps:
                self._tap(m, j, mvtu)
        wiring.connect(m, argmax.o, wiring.flipped(self.o))
        return m

    def _tap(self, m, j, mvtu):
        """Layer ``j``'s output vector on ``tap_<j>_*`` when it transfers; chunked outputs are
        collected here (debug builds only), the last chunk completing the vector."""
        fire = mvtu.o.valid & mvtu.o.ready
        valid, data = getattr(self, f"tap_{j}_valid"), getattr(self, f"tap_{j}_data")
        if not mvtu.out_chunks or mvtu.nf == 1:
            m.d.comb += [valid.eq(fire), data.eq(mvtu.o.payload)]
            return
        width = mvtu.chunk_width
        held = Signal((mvtu.nf - 1) * width, name=f"tap_{j}_held")
        count = Signal(range(mvtu.nf), name=f"tap_{j}_count")
        last = count == mvtu.nf - 1
        with m.If(fire):
            m.d.sync += [held.eq(Cat(held[width:], mvtu.o.payload)),
                         count.eq(Mux(last, 0, count + 1))]
        m.d.comb += [valid.eq(fire & last), data.eq(Cat(held, mvtu.o.payload))]

    def port_widths(self):
        """``{verilog port name: {"direction": "in"|"out", "width": w}}``."""
        ports = {"clk": ("in", 1), "rst": ("in", 1),
                 "i__payload": ("in", self.model.input.width), "i__valid": ("in", 1),
                 "i__ready": ("out", 1),
                 "o__payload": ("out", self.out_width), "o__valid": ("out", 1),
                 "o__ready": ("in", 1)}
        if self.debug_taps:
            for j, mvtu in enumerate(self.layers):
                ports[f"tap_{j}_valid"] = ("out", 1)
                ports[f"tap_{j}_data"] = ("out", mvtu.out_width)
        return {name: {"direction": d, "width": w} for name, (d, w) in ports.items()}

    def sidecar(self, name="bnnflow_top"):
        """The ``OUT.json`` contents describing the generated module."""
        manifest, _ = self.model.manifest()
        layers = []
        for layer, mvtu in zip(self.model.layers, self.layers, strict=True):
            layers.append({
                "name": layer.name, "in_width": mvtu.k, "out_width": mvtu.n,
                "pe": mvtu.fold.pe, "simd": mvtu.fold.simd, "cycles": mvtu.cycles,
                "weight_bits": 1, "synapses": mvtu.k * mvtu.n,
                "padded_in": mvtu.padded_in, "padded_out": mvtu.padded_out,
                "weights_in": mvtu.weights_in,
                "rom_register": mvtu.weights_in == "rom" and mvtu.rom_register,
                "rom_bits": 0 if mvtu.weights_in == "constants" else int(
                    mvtu.nf * mvtu.sf * mvtu.fold.pe * mvtu.fold.simd),
                "output": "popcount" if layer.is_output else "activation",
                "latency": mvtu.latency,
                "input_buffer": mvtu.input_storage,
                "in_chunk": mvtu.in_chunk, "out_chunk": mvtu.chunk_width,
                "accept_wait": mvtu.accept_wait,
            })
        taps = []
        if self.debug_taps:
            for j, mvtu in enumerate(self.layers):
                last = j == len(self.layers) - 1
                taps.append({"layer": j, "name": self.model.layers[j].name,
                             "valid": f"tap_{j}_valid", "data": f"tap_{j}_data",
                             "width": mvtu.out_width,
                             "kind": "popcounts" if last else "activations",
                             "count": mvtu.n,
                             "element_width": mvtu.lane_width})
        return {
            "top": name,
            "ports": self.port_widths(),
            "bit_order": BIT_ORDER,
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
            "popcount_style": self.layers[0].popcount_style,
            "model_checksum": model_checksum(manifest),
            "taps": taps,
            "fault": list(self.fault) if self.fault else None,
            "bnnflow_version": __version__,
        }
