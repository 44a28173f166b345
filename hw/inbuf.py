"""Input buffers of a layer: the vector being processed and the next one, read a slice a cycle.

A layer with ``K`` inputs reads its input ``SIMD`` bits per cycle, slice ``sf`` of
``SF = ceil(K/SIMD)``, and accepts the next vector while it still works on the current one.

* :class:`MemoryBuffer` (``SF > 1``, folded inputs): both vectors live in one memory of
  ``SIMD``-bit words (:class:`amaranth.lib.memory.Memory`, two banks of ``2**ceil(log2 SF)``
  words, mapped to block RAM or LUT RAM as Yosys decides), written a word per cycle as the
  vector arrives and read through a synchronous port (read latency 1). Holding the vectors in
  flip-flops cost ``2 K`` of them, and iCE40 logic blocks share one enable per 8 cells: the
  default network did not place on the iCE40 UP5K.
* :class:`RegisterBuffer` (``SF == 1``): the whole vector is read every cycle, so it stays in
  two ``K``-bit registers (read latency 0).

The vector arrives as a stream of ``ceil(K/C)`` chunks of ``C`` bits, chunk ``j`` holding input
bits ``[j*C, (j+1)*C)`` (bits past ``K`` in the last chunk must be 0). ``C = K`` is a whole
vector a transfer; a producing MVTU with several neuron folds sends ``C = PE * A`` bits per fold
instead (:attr:`bnnflow.hw.mvtu.MVTU.chunk_width`), so no layer collects a whole output vector.
A memory buffer takes ``C = K`` (the vector is written a word a cycle from the held payload
and transfers with its last word, ``SF - 1`` cycles after it is offered: the producer holds it
meanwhile, as stream rules say) or ``C`` a divisor of ``SIMD`` (``SIMD/C`` chunks, one a cycle,
are shifted into a word register and the word is written with the last of them, so every chunk
transfers in the cycle it is offered); see :func:`chunk_fits`.

Timing: a vector is available (``avail``) in the cycle its last word is written, and the layer
starts on it at that edge, as it did when it loaded a register. A whole vector therefore
reaches the layer ``SF - 1`` cycles later than with registers (:attr:`MemoryBuffer.accept_wait`;
the latency from the layer's input transfer to its output is the same).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["MemoryBuffer", "RegisterBuffer", "input_buffer", "buffer_storage", "chunk_fits"]


def chunk_fits(k, simd, chunk):
    """Whether a memory buffer of ``K = k`` inputs read ``simd`` bits a cycle can take chunks of
    ``chunk`` bits: the whole vector (``chunk == k``) or a divisor of ``simd``."""
    return chunk == k or simd % chunk == 0


def _check_int(name, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")


class _Buffer(wiring.Component):
    def __init__(self, k, simd, chunk, x_width):
        sf_count = -(-k // simd)
        self.k, self.simd, self.chunk, self.sf_count = k, simd, chunk, sf_count
        super().__init__({
            "i": In(stream.Signature(chunk)),
            "take": In(1),
            "avail": Out(1),
            "sf": In(range(max(sf_count, 2))),
            "en": In(1),
            "x": Out(x_width),
        })


class RegisterBuffer(_Buffer):
    """Current and next input vector in two ``K``-bit registers (for ``SF == 1`` layers).

    Parameters
    ----------
    k : int
        Vector width.

    Members
    -------
    i : In(stream.Signature(K))
        Whole vectors. ``i.ready`` is a register (no combinational path through the layer).
    take : In(1)
        The layer starts its next vector this cycle if one is available.
    avail : Out(1)
        A vector is available: the next one held, or one arriving this cycle.
    sf, en : In
        Unused (the whole vector is read); present for the common interface.
    x : Out(K)
        The current vector (read latency 0).
    """

    read_latency = 0
    storage = "registers"
    accept_wait = 0

    def __init__(self, k):
        _check_int("k", k, 1, 1 << 30)
        super().__init__(k, k, k, k)

    def elaborate(self, platform):
        m = Module()
        nxt = Signal(self.k)
        nxt_full = Signal()
        m.d.comb += [self.i.ready.eq(~nxt_full), self.avail.eq(nxt_full | self.i.valid)]
        in_fire = self.i.valid & self.i.ready
        with m.If(self.take):
            with m.If(nxt_full):
                m.d.sync += [self.x.eq(nxt), nxt_full.eq(0)]
            with m.Elif(in_fire):
                m.d.sync += self.x.eq(self.i.payload)
        with m.Elif(in_fire):
            m.d.sync += [nxt.eq(self.i.payload), nxt_full.eq(1)]
        return m


class MemoryBuffer(_Buffer):
    """Current and next input vector in two banks of a ``SIMD``-bit-wide memory (``SF > 1``).

    Parameters
    ----------
    k : int
        Vector width ``K``.
    simd : int
        Bits read per cycle, ``1 <= simd < k``.
    chunk : int or None
        Bits per input transfer (``None``: ``k``); see :func:`chunk_fits`.

    Members
    -------
    i : In(stream.Signature(chunk))
        The vector in chunks, lowest bits first.
    take : In(1)
        The layer starts its next vector this cycle if one is available (the banks swap).
    avail : Out(1)
        A whole vector is in the next bank, or its last word is written this cycle.
    sf : In(range(SF))
        Slice of the current vector to read.
    en : In(1)
        Read enable: ``x`` takes slice ``sf`` at the edge (it holds otherwise).
    x : Out(SIMD)
        The slice read at the last enabled edge (read latency 1); bits past ``K`` are 0.

    Raises
    ------
    ValueError
        ``simd`` not in ``1..k-1``, or a chunk width the buffer cannot take.
    """

    read_latency = 1
    storage = "memory"

    @staticmethod
    def check(k, simd, chunk=None):
        """Raise ``ValueError`` unless a buffer of these sizes can be built; return the chunk
        width (``k`` for ``None``)."""
        _check_int("k", k, 2, 1 << 30)
        _check_int("simd", simd, 1, k - 1)
        chunk = k if chunk is None else chunk
        buffer_storage(k, simd, chunk)
        return chunk

    def __init__(self, k, simd, chunk=None):
        chunk = self.check(k, simd, chunk)
        super().__init__(k, simd, chunk, simd)
        self.abits = ceil_log2(self.sf_count)
        self.accept_wait = self.sf_count - 1 if chunk == k else 0

    def elaborate(self, platform):
        m = Module()
        simd, sf_count = self.simd, self.sf_count
        m.submodules.vectors = mem = Memory(shape=simd, depth=2 << self.abits, init=[])
        rd = mem.read_port()
        wr = mem.write_port()

        rbank = Signal()        # bank of the current vector; the next one goes to ~rbank
        nxt_full = Signal()
        complete = Signal()     # the next vector's last word is written this cycle
        m.d.comb += [rd.addr.eq(Cat(self.sf[:self.abits], rbank)), rd.en.eq(self.en),
                     self.x.eq(rd.data), self.avail.eq(nxt_full | complete)]
        with m.If(self.take & self.avail):
            m.d.sync += [rbank.eq(~rbank), nxt_full.eq(0)]
        with m.Elif(complete):
            m.d.sync += nxt_full.eq(1)

        # Word index within the vector; "last word" is a register beside it.
        widx = Signal(range(sf_count))
        last_w = Signal()
        step = Signal()         # a word is written this cycle
        with m.If(step):
            m.d.sync += [widx.eq(Mux(last_w, 0, widx + 1)),
                         last_w.eq(~last_w & (widx == sf_count - 2))]
        m.d.comb += [wr.addr.eq(Cat(widx, ~rbank)), wr.en.eq(step),
                     complete.eq(step & last_w)]
        if self.chunk == self.k:
            self._whole_vector(m, wr, step, widx, last_w, nxt_full)
        else:
            self._chunks_per_word(m, wr, step, widx, last_w, nxt_full)
        return m

    def _whole_vector(self, m, wr, step, widx, last_w, nxt_full):
        """``C = K``: one word a cycle from the held vector, which transfers with its last word
        (``SF - 1`` cycles after it is offered, when the next bank is free)."""
        simd = self.simd
        m.d.comb += step.eq(self.i.valid & ~nxt_full)
        padded = Cat(self.i.payload, Const(0, self.sf_count * simd - self.k))
        m.d.comb += [wr.data.eq(padded.word_select(widx, simd)),
                     self.i.ready.eq(~nxt_full & last_w)]

    def _chunks_per_word(self, m, wr, step, widx, last_w, nxt_full):
        """``C`` divides ``SIMD``: ``SIMD/C`` chunks shift into a word register; the word is
        written with its last chunk (the vector's last word with fewer, zero-padded)."""
        simd, chunk, sf_count = self.simd, self.chunk, self.sf_count
        per = simd // chunk
        chunks = -(-self.k // chunk)
        last_slot = chunks - 1 - (sf_count - 1) * per      # slot of the vector's last chunk
        m.d.comb += self.i.ready.eq(~nxt_full)
        fire = self.i.valid & ~nxt_full
        if per == 1:
            m.d.comb += [step.eq(fire), wr.data.eq(self.i.payload)]
            return
        slot = Signal(range(per))
        held = Signal((per - 1) * chunk)    # earlier chunks of this word, the oldest lowest
        m.d.comb += step.eq(fire & Mux(last_w, slot == last_slot, slot == per - 1))
        with m.If(fire):
            m.d.sync += held.eq(Cat(held[chunk:], self.i.payload))
            m.d.sync += slot.eq(Mux(step, 0, slot + 1))
        full = Cat(held, self.i.payload)
        if last_slot == per - 1:
            m.d.comb += wr.data.eq(full)
        else:
            short = Cat(held[(per - 1 - last_slot) * chunk:], self.i.payload,
                        Const(0, simd - (last_slot + 1) * chunk))
            m.d.comb += wr.data.eq(Mux(last_w, short, full))


def buffer_storage(k, simd, chunk=None):
    """``"memory"`` or ``"registers"``: where a layer of ``k`` inputs read ``simd`` bits a cycle
    holds its input vectors (see :func:`input_buffer`).

    Raises
    ------
    ValueError
        If that buffer cannot take chunks of ``chunk`` bits.
    """
    chunk = k if chunk is None else chunk
    _check_int("simd", simd, 1, k)
    _check_int("chunk", chunk, 1, k)
    if simd < k:
        if not chunk_fits(k, simd, chunk):
            raise ValueError(f"chunk must be {k} (the whole vector) or a divisor of simd "
                             f"({simd}), not {chunk!r}")
        return MemoryBuffer.storage
    if chunk != k:
        raise ValueError(f"chunk must be {k} (the whole vector) when simd is {simd}, not "
                         f"{chunk!r}")
    return RegisterBuffer.storage


def input_buffer(k, simd, chunk=None):
    """The buffer a layer of ``k`` inputs read ``simd`` bits a cycle uses: a
    :class:`MemoryBuffer` when ``simd < k`` (``SF > 1``), else a :class:`RegisterBuffer`
    (which takes whole vectors only)."""
    if buffer_storage(k, simd, chunk) == MemoryBuffer.storage:
        # Checked before it is built: a buffer whose constructor raises still warns "created
        # but never used" when it is collected, in whichever test happens to run then.
        MemoryBuffer.check(k, simd, chunk)
        return MemoryBuffer(k, simd, chunk)
    return RegisterBuffer(k)
