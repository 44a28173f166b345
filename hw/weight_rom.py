"""Weight storage of the MVTU: weights packed into ROM words, and the stage that reads them.

Fully parallel units (one ROM word) hold their weights as constants; folded ones read a
synchronous ROM (:class:`amaranth.lib.memory.Memory`, block RAM) one word per ``(nf, sf)``
step, optionally through a weight register (``rom_register``). Ternary units keep their mask
bits beside the sign bits in the same word. See :class:`bnnflow.hw.mvtu.MVTU`.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib.memory import Memory

__all__ = ["padded_weights", "rom_bits", "pack_weights", "delay", "delays", "weight_lanes"]


def padded_weights(weights, pe, simd):
    """Weights ``(N, K)`` padded to ``(NF*PE, SF*SIMD)``: bit 1 in padded inputs, 0 in padded
    neurons (their outputs are dropped)."""
    w = np.asarray(weights, dtype=np.uint8)
    n, k = w.shape
    nf, sf = -(-n // pe), -(-k // simd)
    out = np.zeros((nf * pe, sf * simd), dtype=np.uint8)
    out[:n, :k] = w
    out[:n, k:] = 1
    return out


def rom_bits(weights, pe, simd):
    """The bits of a folded layer's ROM, ``(NF*SF, PE*SIMD)`` uint8: word ``nf*SF + sf``, bit
    ``p*SIMD + s`` holds the weight of neuron ``nf*PE + p`` for input ``sf*SIMD + s`` (padded
    as :func:`padded_weights`)."""
    w = padded_weights(weights, pe, simd)
    nf, sf = w.shape[0] // pe, w.shape[1] // simd
    return w.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe * simd)


def pack_weights(weights, pe, simd):
    """ROM words of a folded layer (:func:`rom_bits`), as a list of ``NF*SF`` Python ints of
    ``PE*SIMD`` bits."""
    packed = np.packbits(rom_bits(weights, pe, simd), axis=-1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def delay(m, value, count, en, name):
    """``value`` delayed by ``count`` enabled cycles."""
    return delays(m, value, count, en, name)[-1]


def delays(m, value, count, en, name):
    """``[value, value delayed by 1, ..., by count]`` enabled cycles."""
    out = [value]
    for i in range(count):
        reg = Signal(len(value), name=f"{name}_d{i}")
        with m.If(en):
            m.d.sync += reg.eq(out[-1])
        out.append(reg)
    return out


def weight_lanes(unit, m, run, busy, buf, ctrl0):
    """Stage 1 of ``unit`` (an :class:`~bnnflow.hw.mvtu.MVTU`): constants or the weight ROM,
    and the input slice and control delayed beside the ROM read: ``(per-PE weight lanes,
    input slice, control)``; a ternary unit's lanes are ``Cat(signs, mask)``."""
    pe, simd = unit.fold.pe, unit.fold.simd
    words = pack_weights(unit.weights, pe, simd)
    # A ternary layer's word is the sign bits, then the mask bits (lane p: signs at
    # [p*S, (p+1)*S), mask at PE*S + p*S); lanes come out as Cat(signs, mask).
    masks = None if unit.mask is None else pack_weights(unit.mask, pe, simd)
    lane = (1 << simd) - 1
    if unit.weights_in == "constants":
        lanes_w = [Const((words[0] >> (p * simd)) & lane, simd) for p in range(pe)]
        if masks is not None:
            lanes_w = [Cat(w, Const((masks[0] >> (p * simd)) & lane, simd))
                       for p, w in enumerate(lanes_w)]
        return lanes_w, buf.x, ctrl0
    width = pe * simd
    if masks is not None:
        words = [w | (z << width) for w, z in zip(words, masks, strict=True)]
        width *= 2
    m.submodules.weights = rom = Memory(shape=width, depth=len(words), init=words)
    port = rom.read_port()
    cycles = len(words)
    ptr = Signal(range(cycles))
    if unit.rom_register:
        # Word ``ptr`` is read one issued step ahead into the port's data register, which
        # loads the weight register ``w`` beside ``x``: the XNOR starts from flip-flops,
        # not from the block RAM's clock-to-out, and the latency stays one cycle. The port
        # reads when a step is issued, and once after reset to hold word 0 for the first
        # step; vectors always run through all the words, so ``ptr`` is simply the issued
        # step + 1, wrapping at ``cycles``.
        primed = Signal()
        read = Signal()
        m.d.comb += read.eq(run & (busy | ~primed))
        with m.If(run):
            m.d.sync += primed.eq(1)
    else:
        # Word ``ptr`` (the issued step) is read as the step is issued; the port's data
        # register feeds the XNOR.
        read = run & busy
    with m.If(read):
        if cycles & (cycles - 1) == 0:
            m.d.sync += ptr.eq(ptr + 1)     # wraps by itself: no logic but the +1
        else:
            # The wrap flag is a register beside the counter, not a compare of it.
            ptr_last = Signal()
            m.d.sync += [ptr.eq(Mux(ptr_last, 0, ptr + 1)),
                         ptr_last.eq(ptr == cycles - 2)]
    m.d.comb += [port.addr.eq(ptr),
                 port.en.eq(read if unit.rom_register else run)]
    w1 = delay(m, port.data, 1, run, "w") if unit.rom_register else port.data
    lanes_w = [w1[p * simd:(p + 1) * simd] for p in range(pe)]
    if masks is not None:
        lanes_w = [Cat(w, w1[pe * simd + p * simd:pe * simd + (p + 1) * simd])
                   for p, w in enumerate(lanes_w)]
    # A memory buffer's read port is the one-cycle delay beside the ROM's.
    x1 = buf.x if buf.read_latency else delay(m, buf.x, 1, run, "x")
    return lanes_w, x1, delay(m, ctrl0, 1, run, "ctrl")
