# amaranth: UnusedElaboratable=no
"""Matrix-vector-threshold unit (MVTU): one folded binary fully connected layer, streaming.

Datapath for ``K`` inputs, ``N`` neurons, folding ``PE x SIMD`` (``NF = ceil(N/PE)`` neuron
folds, ``SF = ceil(K/SIMD)`` synapse folds, ``cycles = NF * SF``)::

    i --> input buffer: current + next vector --(SIMD-bit slice sf)--------+
          (memory if SF > 1, else registers)  sequencer (nf, sf) --> weight ROM|constants
                                                                           |
          XNOR (PE x SIMD bits, a Signal) --> PE x Popcount(SIMD, pipeline stages)
          --> accumulate over SF slices --> Threshold(fold nf) | raw popcount
          --> collect NF folds --> output register --> o

* **Input buffering** (:mod:`bnnflow.hw.inbuf`). The unit accepts the next vector while it
  works on the current one and switches to it without a bubble, so neighbouring layers folded
  differently run at the II of the slowest. With ``SF > 1`` both vectors live in a memory read
  a slice per cycle, written as chunks of ``in_chunk`` bits arrive; with ``SF == 1`` in two
  registers. ``i.ready`` comes from registers (no combinational path through the layer).
* **Output chunks.** ``out_chunks=True`` sends each neuron fold's ``PE`` lanes as one transfer
  (padded neurons as 0) instead of collecting the whole vector, for a next layer that writes
  them straight into its input memory.
* **Stalls.** When a finished vector meets a full output register that is not being read, the
  whole pipeline (sequencer, ROM port, popcount registers, accumulators) holds for that cycle;
  nothing is lost.
* **Timing.** The sequencer's first/last flags are registers beside its counters, and with
  several neuron folds the thresholds of the next fold are selected one cycle ahead into a
  register (:class:`~bnnflow.hw.threshold.Threshold` ``select_ahead``): neither adds latency.
  Binary hidden layers with several synapse folds accumulate ``popcount - threshold`` (signed,
  starting from ``-t`` at the first slice) and fire on the sign of the last sum, so one carry
  chain, not an adder and a comparator, lies between the accumulator and the output.
* **Weights.** Fully parallel (``cycles == 1``): constants. Folded: a synchronous ROM
  (:class:`amaranth.lib.memory.Memory`, one ``PE*SIMD``-bit word per ``(nf, sf)``, block RAM),
  which adds one cycle of latency. See :func:`pack_weights`. The ROM address is a counter
  register with nothing but its own ``+ 1`` in front (no compare or mux on power-of-two
  depths). With ``rom_register`` (off by default) the word of the next step is read one step ahead
  and moved into a weight register as its step is issued, beside the input slice: the XNOR
  then starts from flip-flops instead of the block RAM's clock-to-out (about 5.8 ns on ECP5),
  at ``PE*SIMD + 1`` flip-flops and no added latency.
* **Padding.** ``K`` not divisible by ``SIMD``: the input is padded with bit 0 and the weights
  with bit 1, so ``XNOR = 0`` there and popcounts and thresholds are unchanged. ``N`` not
  divisible by ``PE``: the padded neurons are computed and dropped.

Output payload: hidden layer (thresholds given), neuron ``n`` at bits ``[n*A, (n+1)*A)`` with
``A = bits_for(T)`` (``A = 1`` for binary activations: bit ``n`` = neuron ``n``); last layer
(no thresholds), popcount of neuron ``n`` at ``[n*pw, (n+1)*pw)`` with ``pw = bits_for(K)``.

Latency (input transfer at edge ``t`` into an idle unit, output transfer at edge
``t + latency``): ``cycles + rom + pipeline + 1`` with ``rom = 0`` for constants, ``1`` for ROM
(with ``out_chunks``, the transfer of the last chunk). A whole vector offered to a memory
buffer transfers ``accept_wait = SF - 1`` cycles after it is offered (it is copied in first).
"""

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ..model.kinds import matrix_cycles
from .folding import LayerFold
from .inbuf import buffer_storage, chunk_fits, input_buffer
from .popcount import DEFAULT_STYLE, STYLES, Popcount
from .threshold import Threshold
from .weight_rom import delays, pack_weights, padded_weights, weight_lanes

__all__ = ["MVTU", "pack_weights", "padded_weights"]


class MVTU(wiring.Component):
    """One binary fully connected layer as a streaming, folded XNOR-popcount-threshold unit.

    Parameters
    ----------
    weights : array of 0/1, shape ``(N, K)``
        Bit 1 is weight +1.
    thresholds : int array ``(N, T)`` or None
        Sorted thresholds per neuron (``T = 1``: binary activation ``popcount >= t``); ``None``
        for the last layer, which outputs popcounts.
    fold : LayerFold or (pe, simd)
        ``1 <= pe <= N``, ``1 <= simd <= K``; non-divisors are padded.
    pipeline : int
        Register stages in each popcount tree (``>= 0``); raises Fmax, keeps the II.
    popcount_style : str
        Structure of the popcount trees, one of :data:`bnnflow.hw.popcount.STYLES` (same
        function and latency; ``"keep"``, the default, is the smaller and faster one on iCE40
        and in Verilator, see hw/README.md).
    in_chunk : int or None
        Bits per input transfer: ``K`` (``None``, whole vectors) or, with ``SF > 1``, a divisor
        of ``SIMD`` (:func:`bnnflow.hw.inbuf.chunk_fits`).
    out_chunks : bool
        Send one transfer per neuron fold (``PE * A`` bits) instead of whole vectors.
    in_bits : int
        Bits per input element (1..8): ``n > 1`` after a layer with ``n``-bit activations.
        The input vector is ``K * n`` bits (element ``k`` at ``[k*n, (k+1)*n)``); each weight
        bit covers its element's ``n`` bits in the XNOR, and one popcount tree per bit plane
        ``b`` is summed with weight ``2**b``, giving ``sum_j (a_j if w_j else L - a_j)``
        (:func:`bnnflow.model.conventions.popcount_levels`); the ROM is unchanged.
    mask : array of 0/1, shape ``(N, K)``, or None
        Ternary weights (:class:`bnnflow.model.ternary.TernaryDenseLayer`): 0 where the weight
        is 0, so that position never counts (``popcount(XNOR(x, w) AND mask)``). The weight ROM
        words get the mask bits beside the sign bits (twice as wide). ``None``: binary.
    rom_register : bool
        Folded layers: read the weight ROM one step ahead into a ``PE*SIMD``-bit register, so
        the XNOR starts from flip-flops instead of the block RAM output (same latency,
        ``PE*SIMD + 1`` more flip-flops; pays on ECP5, not on the iCE40 UP5K, see
        ``bnnflow.boards.estimate.ROM_REGISTER``). ``False`` (default): the ROM port's data feeds
        the XNOR. No effect on fully parallel layers.

    Members
    -------
    i : In(stream.Signature(in_chunk))
        Input vectors, bit ``k`` = input ``k`` (chunk ``j`` holds inputs ``[j*C, (j+1)*C)``).
    o : Out(stream.Signature(chunk_width))
        Activations (``N * bits_for(T)`` bits) or popcounts (``N * bits_for(K)`` bits); with
        ``out_chunks`` the ``PE`` lanes of one neuron fold a transfer.

    Attributes
    ----------
    cycles : int
        ``ceil(N/PE) * ceil(K/SIMD)``, the unit's II.
    latency : int
        ``cycles + rom + pipeline + 1`` (see module docstring).
    accept_wait : int
        Cycles a whole input vector waits before its transfer (``SF - 1`` into a memory).
    input_storage : str
        ``"memory"`` or ``"registers"``.
    chunk_width : int
        Width of ``o.payload``.
    out_width : int
        Width of a whole output vector, ``N * lane_width``.
    lane_width : int
        Bits per output element: ``bits_for(T)`` (activations) or ``bits_for(K)`` (popcounts).

    This is the hardware unit of ``binary_dense`` layers (:data:`bnnflow.hw.units.UNITS`):
    :meth:`from_layer`, :meth:`out_chunk`, :meth:`takes_chunk` and :meth:`sidecar` are its
    side of the unit interface that :class:`~bnnflow.hw.top.BnnTop` uses.

    Raises
    ------
    ValueError
        Bad weights/thresholds shapes, folding out of ``1..N`` / ``1..K`` or a negative
        ``pipeline``.
    TypeError
        ``rom_register`` or ``out_chunks`` not a bool.
    """

    def __init__(self, weights, thresholds=None, fold=None, pipeline=0, *,
                 popcount_style=DEFAULT_STYLE, rom_register=False, in_chunk=None,
                 out_chunks=False, mask=None, in_bits=1):
        w = np.asarray(weights)
        if w.ndim != 2 or w.size == 0 or not np.all((w == 0) | (w == 1)):
            raise ValueError(f"weights must be a non-empty (N, K) array of 0/1, not shape "
                             f"{w.shape}")
        n, k = w.shape
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != w.shape or not np.all((mask == 0) | (mask == 1)):
                raise ValueError(f"mask must be an array of 0/1 of the weights' shape "
                                 f"{w.shape}, not {mask.dtype} {mask.shape}")
            mask = mask.astype(np.uint8)
        self.mask = mask
        if not isinstance(in_bits, int) or isinstance(in_bits, bool) or not 1 <= in_bits <= 8:
            raise ValueError(f"in_bits must be an integer in 1..8, not {in_bits!r}")
        self.in_bits = in_bits
        # The largest popcount: L*K for n-bit inputs (L = 2**n - 1), K for bits.
        self.max_count = ((1 << in_bits) - 1) * k
        if fold is None:
            fold = LayerFold(n, k)
        elif not isinstance(fold, LayerFold):
            fold = LayerFold(*fold)
        if fold.pe > n:
            raise ValueError(f"pe must be an integer in 1..{n}, not {fold.pe!r}")
        if fold.simd > k:
            raise ValueError(f"simd must be an integer in 1..{k}, not {fold.simd!r}")
        if not isinstance(pipeline, int) or isinstance(pipeline, bool) or pipeline < 0:
            raise ValueError(f"pipeline must be a non-negative integer, not {pipeline!r}")
        if not isinstance(popcount_style, str) or popcount_style not in STYLES:
            raise ValueError(f"popcount_style must be one of {', '.join(map(repr, STYLES))}, "
                             f"not {popcount_style!r}")
        self.popcount_style = popcount_style
        if not isinstance(rom_register, bool):
            raise TypeError(f"rom_register must be a bool, not {rom_register!r}")
        self.rom_register = rom_register
        if thresholds is not None:
            t = np.asarray(thresholds)
            if t.ndim == 1:
                t = t[:, None]
            if t.ndim != 2 or t.shape[0] != n or t.shape[1] < 1:
                raise ValueError(f"thresholds must have shape ({n}, T), not {t.shape}")
            thresholds = t.astype(np.int64)
        self.weights = w.astype(np.uint8)
        self.thresholds = thresholds
        self.k, self.n, self.fold, self.pipeline = k, n, fold, pipeline
        self.nf, self.sf = -(-n // fold.pe), -(-k // fold.simd)
        self.cycles = matrix_cycles(k, n, fold)
        self.padded_in = self.sf * fold.simd - k
        self.padded_out = self.nf * fold.pe - n
        self.weights_in = "constants" if self.cycles == 1 else "rom"
        self.rom_latency = 0 if self.weights_in == "constants" else 1
        self.latency = self.cycles + self.rom_latency + pipeline + 1
        self.count_width = bits_for(self.max_count)
        if thresholds is None:
            self.lane_width = self.count_width
        else:
            self.lane_width = bits_for(thresholds.shape[1])
        self.out_width = n * self.lane_width
        if not isinstance(out_chunks, bool):
            raise TypeError(f"out_chunks must be a bool, not {out_chunks!r}")
        self.out_chunks = out_chunks
        self.chunk_width = fold.pe * self.lane_width if out_chunks else self.out_width
        # The input buffer holds K * in_bits bits and reads SIMD elements of in_bits each.
        self.in_chunk = k * in_bits if in_chunk is None else in_chunk
        # The buffer checks the chunk width against the folding.
        self.input_storage = buffer_storage(k * in_bits, fold.simd * in_bits, self.in_chunk)
        # A whole vector is copied into the memory a word a cycle before it transfers.
        whole = self.input_storage == "memory" and self.in_chunk == k * in_bits
        self.accept_wait = self.sf - 1 if whole else 0
        super().__init__({"i": In(stream.Signature(self.in_chunk)),
                          "o": Out(stream.Signature(self.chunk_width))})

    @classmethod
    def from_layer(cls, layer, fold, options):
        """The unit of a ``binary_dense`` layer folded as ``fold``, with the design and stream
        options of ``options`` (:class:`bnnflow.hw.units.UnitOptions`)."""
        # Built here for BnnTop, which may be made only for its sidecar and never elaborated:
        # the first line of this file turns off Amaranth's "created but never used" warning
        # for units made here, as hw/top.py does for its own.
        return cls(layer.weights, layer.thresholds, fold, options.pipeline,
                   popcount_style=options.popcount_style, rom_register=options.rom_register,
                   in_chunk=options.in_chunk, out_chunks=options.out_chunks,
                   mask=getattr(layer, "mask", None), in_bits=layer.in_bits)

    @staticmethod
    def out_chunk(layer, fold):
        """Bits per transfer when the layer sends each neuron fold as it is computed (``PE *
        A``), or ``None`` when it has one fold only or emits the network's popcounts."""
        if layer.is_output or fold.pe >= layer.out_width:
            return None
        return fold.pe * layer.activation_bits

    @staticmethod
    def takes_chunk(layer, fold, width):
        """Whether the layer's input takes chunks of ``width`` bits: the whole vector in one
        (the one pixel of a ``1 x 1`` map), or, in a memory buffer (``SIMD < K``), the widths
        :func:`~bnnflow.hw.inbuf.chunk_fits` allows."""
        bits = layer.in_bits
        return width == layer.in_width * bits or (
            fold.simd < layer.in_width and chunk_fits(layer.in_width * bits, fold.simd * bits,
                                                      width))

    def sidecar(self):
        """This unit's own entries of its layer in the sidecar (padding, weight storage,
        input buffer)."""
        return {"padded_in": self.padded_in, "padded_out": self.padded_out,
                "weights_in": self.weights_in,
                "rom_register": self.weights_in == "rom" and self.rom_register,
                "rom_bits": 0 if self.weights_in == "constants" else int(
                    self.nf * self.sf * self.fold.pe * self.fold.simd
                    * (1 if self.mask is None else 2)),
                "input_buffer": self.input_storage}

    def elaborate(self, platform):
        m = Module()
        run = Signal()
        buf, busy, ctrl0 = self._sequencer(m, run)
        lanes_w, x1, ctrl1 = self._weights(m, run, busy, buf, ctrl0)

        # One XNOR signal per PE: the popcount trees are built from signals, not expressions
        # (netlist size), and no single net exceeds Amaranth's 65535-bit limit. Ternary
        # weights: the mask half of each word gates the XNOR (a zero weight never counts).
        pe, simd, nb = self.fold.pe, self.fold.simd, self.in_bits
        # n-bit inputs: the slice is split into its bit planes once (plane b holds bit b of
        # every element), and each PE's weight bits XNOR each plane as they are: no weight bit
        # replicated over its element's bits, whose one concatenation of SIMD * n parts was a
        # Verilog line Verilator refuses (over 40000 tokens at 784 8-bit inputs).
        planes_x = [x1]
        if nb > 1:
            planes_x = []
            for b in range(nb):
                plane = Signal(simd, name=f"plane_{b}")
                m.d.comb += plane.eq(Cat(*(x1[i * nb + b] for i in range(simd))))
                planes_x.append(plane)
        xnors = []
        for p in range(pe):
            w = lanes_w[p][:simd]
            z = lanes_w[p][simd:] if self.mask is not None else None
            per_plane = []
            for b, x in enumerate(planes_x):
                xnor = Signal(simd, name=f"xnor_{p}" + (f"_{b}" if nb > 1 else ""))
                m.d.comb += xnor.eq(~(x ^ w) if z is None else ~(x ^ w) & z)
                per_plane.append(xnor)
            xnors.append(per_plane)

        # --- popcount trees: one per bit plane of n-bit inputs, weighted 2**b -----------------
        counts = []
        for p in range(pe):
            planes = []
            for b in range(nb):
                pc = Popcount(simd, self.pipeline, style=self.popcount_style)
                m.submodules[f"popcount_{p}" + (f"_{b}" if nb > 1 else "")] = pc
                m.d.comb += [pc.bits.eq(Cat(*(xnors[p][b][i] for i in range(simd)))),
                             pc.en.eq(run)]
                planes.append(pc.count)
            if nb == 1:
                counts.append(planes[0])
            else:
                count = Signal(bits_for(simd * ((1 << nb) - 1)), name=f"count_{p}")
                m.d.comb += count.eq(sum(c << b for b, c in enumerate(planes)))
                counts.append(count)
        ctrls = delays(m, ctrl1, self.pipeline, run, "ctrl_pc")
        ctrl2 = ctrls[-1]
        # The control one enabled cycle ahead of ctrl2 (the threshold register selects the
        # next fold's thresholds from it). Several folds imply a ROM, so ctrl0 exists before
        # ctrl1.
        ctrl_ahead = ctrls[-2] if self.pipeline else ctrl0
        t_valid, t_first = ctrl2[0], ctrl2[1]

        # --- binary activations over several synapse folds: accumulate popcount - threshold ---
        if self.thresholds is not None and self.thresholds.shape[1] == 1 and self.sf > 1:
            lanes = self._accumulate_against_threshold(m, counts, run, t_valid, t_first,
                                                       ctrl_ahead[4:])
        else:
            lanes = self._accumulate_then_threshold(m, counts, run, t_valid, t_first,
                                                    ctrl2[4:], ctrl_ahead[4:])
        lanes_sig = Signal(pe * self.lane_width)
        m.d.comb += lanes_sig.eq(lanes)
        self._output(m, run, lanes_sig, ctrl2)
        return m

    def _sequencer(self, m, run):
        """Stage 0: the input buffer and the (nf, sf) counters: ``(buffer, busy, ctrl0)``, the
        control beside the data being valid, first slice, fold done (its last slice), vector
        done and the fold index."""
        nf_count, sf_count = self.nf, self.sf
        m.submodules.inbuf = buf = input_buffer(self.k * self.in_bits,
                                                self.fold.simd * self.in_bits, self.in_chunk)
        wiring.connect(m, wiring.flipped(self.i), buf.i)
        busy = Signal()
        # At least one bit each: zero-width signals become "[-1:0]" ranges in Verilog.
        sf = Signal(range(max(sf_count, 2)))
        nf = Signal(range(max(nf_count, 2)))
        # The "last slice" / "last fold" / "first slice" flags are registers kept beside the
        # counters (not compares of them): they decide when the next vector is taken.
        last_sf = Signal() if sf_count > 1 else Const(1, 1)
        last_nf = Signal() if nf_count > 1 else Const(1, 1)
        first0 = Signal(init=1) if sf_count > 1 else Const(1, 1)
        last_issue = Signal()
        m.d.comb += last_issue.eq(busy & last_sf & last_nf)

        with m.If(run & busy):
            if sf_count > 1:
                with m.If(last_sf):
                    m.d.sync += [sf.eq(0), last_sf.eq(0), first0.eq(1)]
                with m.Else():
                    m.d.sync += [sf.eq(sf + 1), last_sf.eq(sf == sf_count - 2), first0.eq(0)]
            if nf_count > 1:
                with m.If(last_sf):
                    with m.If(last_nf):
                        m.d.sync += [nf.eq(0), last_nf.eq(0)]
                    with m.Else():
                        m.d.sync += [nf.eq(nf + 1), last_nf.eq(nf == nf_count - 2)]
        take = run & (~busy | last_issue)
        m.d.comb += [buf.take.eq(take), buf.sf.eq(sf), buf.en.eq(run)]
        with m.If(take):
            m.d.sync += busy.eq(buf.avail)
        return buf, busy, Cat(busy, first0, busy & last_sf, last_issue, nf)

    def _weights(self, m, run, busy, buf, ctrl0):
        """Stage 1: constants or the weight ROM (:func:`bnnflow.hw.weight_rom.weight_lanes`)."""
        return weight_lanes(self, m, run, busy, buf, ctrl0)

    def _output(self, m, run, lanes_sig, ctrl2):
        """Collect the neuron folds (or send each one) into the output register. It is loaded
        with a whole vector at its last fold, or with each fold's chunk (``out_chunks``); a
        load that meets a full register not being read holds the whole layer (``run``) for
        the cycle."""
        t_fold_done, t_finish, t_nf = ctrl2[2], ctrl2[3], ctrl2[4:]
        pe, nf_count = self.fold.pe, self.nf
        load = t_fold_done if self.out_chunks else t_finish
        m.d.comb += run.eq(~(load & self.o.valid & ~self.o.ready))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        slot = pe * self.lane_width
        if self.out_chunks:
            # Padded neurons of the last fold are sent as 0, as the next layer's padding wants.
            kept = (self.n - (nf_count - 1) * pe) * self.lane_width
            if kept < slot:
                mask = Const((1 << kept) - 1, slot)
                out = Mux(t_finish, lanes_sig & mask, lanes_sig)
            else:
                out = lanes_sig
        elif nf_count > 1:
            collect = Signal((nf_count - 1) * slot)
            out = Cat(collect, lanes_sig)[:self.out_width]
            with m.If(run & t_fold_done & ~t_finish):
                m.d.sync += collect.word_select(t_nf, slot).eq(lanes_sig)
        else:
            out = lanes_sig[:self.out_width]
        with m.If(run & load):
            m.d.sync += [self.o.payload.eq(out), self.o.valid.eq(1)]

    def _accumulate_against_threshold(self, m, counts, run, t_valid, t_first, fold_ahead):
        """Binary activations with ``SF > 1``: one signed sum per PE, ``rem = -t`` at the first
        slice plus the slice popcounts, so ``popcount >= t`` is the sign of the last sum (one
        carry chain from the accumulator to the output, not an adder and a comparator).
        ``t = 0`` always fires (the sum is >= 0), ``t = K + 1`` never does (it is <= -1).
        With several neuron folds ``-t`` of the fold is selected one enabled cycle ahead
        into a register, as :class:`~bnnflow.hw.threshold.Threshold` ``select_ahead``."""
        pe, nf_count = self.fold.pe, self.nf
        t = np.zeros(nf_count * pe, dtype=np.int64)
        t[:self.n] = self.thresholds[:, 0]
        shape = signed(bits_for(self.max_count + 1) + 1)
        fires = []
        for p in range(pe):
            column = [int(t[f * pe + p]) for f in range(nf_count)]
            if nf_count == 1:
                neg_t = Const(-column[0], shape)
            else:
                neg_t = Signal(shape, name=f"neg_t_{p}")
                with m.If(run):
                    m.d.sync += neg_t.eq(Array(Const(-v, shape) for v in column)[fold_ahead])
            rem = Signal(shape, name=f"rem_{p}")
            total = Signal(shape, name=f"total_{p}")
            m.d.comb += total.eq(Mux(t_first, neg_t, rem) + counts[p])
            with m.If(run & t_valid):
                m.d.sync += rem.eq(total)
            fires.append(~total[-1])
        return Cat(*fires)

    def _accumulate_then_threshold(self, m, counts, run, t_valid, t_first, t_nf, fold_ahead):
        """Popcount totals over the synapse folds, then :class:`Threshold` (hidden layers) or
        the raw totals (last layer)."""
        pe, sf_count, nf_count = self.fold.pe, self.sf, self.nf
        totals = []
        for p in range(pe):
            total = Signal(self.count_width, name=f"total_{p}")
            if sf_count > 1:
                acc = Signal(self.count_width, name=f"acc_{p}")
                m.d.comb += total.eq(Mux(t_first, 0, acc) + counts[p])
                with m.If(run & t_valid):
                    m.d.sync += acc.eq(total)
            else:
                m.d.comb += total.eq(counts[p])
            totals.append(total)

        # --- threshold or raw popcounts -------------------------------------------------------
        if self.thresholds is None:
            lanes = Cat(*totals)
        else:
            m.submodules.threshold = th = Threshold(self.thresholds, pe, self.count_width,
                                                    select_ahead=nf_count > 1)
            m.d.comb += [th.fold.eq(fold_ahead if nf_count > 1 else t_nf), th.en.eq(run)]
            for p in range(pe):
                m.d.comb += th.popcounts[p].eq(totals[p])
            lanes = th.activations.as_value()
        return lanes
