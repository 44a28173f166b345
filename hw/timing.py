"""Cycle model of a network's handshakes: the latency of conv networks, without simulating data.

A conv network's latency has no closed form: windows queue in front of a folded conv layer, the
window unit stops taking pixels when its queue is full, and pools and dense layers after a map
take pixels as they come. :func:`stream_latency` therefore steps the control state of every
unit of a :class:`~bnnflow.hw.top.BnnTop` cycle by cycle (valid and ready flags, counters,
buffer and queue levels; no payloads), by the rules of the units themselves:

* :class:`~bnnflow.hw.pad.PadMap` (padded conv layers): an output register that, when empty or
  being read, loads the pad pixel at a border position or takes the input pixel at an interior
  one;
* :class:`~bnnflow.hw.window.SlidingWindow` (on the padded map): no pixel is taken while a
  window waits and is not being read.
* :class:`~bnnflow.hw.pixel_window.PixelWindow` and :class:`~bnnflow.hw.row_window.RowWindow`
  (conv layers whose MVTU takes pixels or window rows): the writer's column and its lag behind
  the reader's top row, the reader's window and pixel (row);
* the window queue (:class:`amaranth.lib.fifo.SyncFIFOBuffered`): ``depth - 1`` entries in
  memory plus the output register, one cycle from write to readable;
* :class:`~bnnflow.hw.mvtu.MVTU` with its input buffer (:mod:`bnnflow.hw.inbuf`: registers, or
  memory written a word a cycle from a whole vector or from chunks), the sequencer, the weight
  ROM and popcount pipeline delays, and the stall on a full output register;
* :class:`~bnnflow.hw.maxpool.MaxPool` and :class:`~bnnflow.hw.argmax.Argmax`.

The run is the verify bench's timing phase (:mod:`bnnflow.sim.stimulus`): right after reset,
images offered back to back (one pixel or vector per cycle while taken), ``o.ready`` high. The
latency is the number of edges from the transfer of the first image's last input to the
transfer of its output, which is what ``verify`` measures; tests compare the two on every
simulator and check that the model gives the closed-form latency of MLPs.
"""

from .conv import ConvUnit
from .maxpool import MaxPool
from .mvtu import MVTU

__all__ = ["TIMING_IMAGES", "stream_latency", "stream_timing", "mean_spacing", "needed_pixels"]

#: Images of the verify bench's stall-free timing phase (bnnflow.sim.verify_report), which
#: :func:`stream_timing` models.
TIMING_IMAGES = 8


def needed_pixels(model):
    """Pixels of an image, in stream order, up to the last one its output depends on.

    A pool or a strided conv drops the rows and columns past its last whole window, so the output of
    a network with such a layer does not wait for the map's last pixels: under input stalls it can
    leave before them. Walking back from the first dense layer (which reads its whole input), a pool
    of window ``k`` or a conv layer of kernel ``kh x kw``, stride ``s``, needs ``(rows - 1) s + k``
    (or ``+ kh``) input rows for ``rows`` output rows (columns alike); the last needed pixel is the
    last of those rows and columns. A conv padded by ``p`` needs that many rows of its padded map,
    ``min(H, (rows - 1) s + kh - p)`` input rows (columns alike); when that reaches into the
    bottom border, all of its input (the pad unit sends the border after the map's last pixel).
    ``H * W`` when nothing is dropped, 1 for a network without a map input.
    """
    layers = [layer for layer in model.layers if hasattr(layer, "in_shape")]
    if not layers:
        return 1
    rows, cols = layers[-1].out_shape[:2]
    for layer in reversed(layers):
        kh, kw = getattr(layer, "kernel", None) or (layer.window, layer.window)
        p = getattr(layer, "pad", 0)
        (h, w, _), s = layer.in_shape, layer.stride
        rows, cols = (rows - 1) * s + kh - p, (cols - 1) * s + kw - p
        # Every window holds an input pixel (p < kh), so rows, cols >= 1; past the map's last
        # row the padded position follows every input pixel.
        rows, cols = (h, w) if rows > h else (rows, min(w, cols))
    width = layers[0].in_shape[1]
    return (rows - 1) * width + cols


def _window_end(pos, k, s):
    """Whether position ``pos`` of an axis is the last of a window (``k`` long, one every ``s``
    positions from 0). Every such window fits the axis, so no count is needed."""
    return pos >= k - 1 and (pos - k + 1) % s == 0


class _Window:
    def __init__(self, window):
        (self.h, self.w, _), (self.kh, self.kw) = window.in_shape, window.kernel
        self.s = window.stride
        self.row = self.col = 0
        self.o_valid = False

    def _at_window(self):
        return _window_end(self.row, self.kh, self.s) and _window_end(self.col, self.kw, self.s)

    def i_ready(self, o_ready):
        return not self.o_valid or o_ready

    def tick(self, i_valid, o_ready):
        take = i_valid and self.i_ready(o_ready)
        at_window = self._at_window()
        if take:
            last_col = self.col == self.w - 1
            self.col = 0 if last_col else self.col + 1
            if last_col:
                self.row = 0 if self.row == self.h - 1 else self.row + 1
        if o_ready:
            self.o_valid = False
        if take and at_window:
            self.o_valid = True
        return take


class _RingWindow:
    """:class:`~bnnflow.hw.pixel_window.PixelWindow` and :class:`~bnnflow.hw.row_window.
    RowWindow`: a ring of row memories written a pixel a cycle while ``lag < rows``; windows
    read out of it a pixel (a window row) a cycle once written."""

    def __init__(self, window):
        (self.h, self.w, _), (self.kh, self.kw) = window.in_shape, window.kernel
        self.per_row = window.chunks // self.kh     # transfers per window row: kw or 1
        self.s, self.rows = window.stride, window.rows
        self.ho, self.wo = window.out_shape
        self.lag = self.wcol = 0
        self.oi = self.jc = self.a = self.b = 0
        self.o_valid = False

    def i_ready(self, o_ready):
        return self.lag < self.rows

    def _readable(self):
        return (self.a or self.b or self.lag > self.kh - 1
                or (self.lag == self.kh - 1 and self.wcol >= self.jc + self.kw))

    def _advance(self):
        """Move the reader to its next pixel; the rows it releases."""
        if self.b != self.per_row - 1:
            self.b += 1
            return 0
        self.b = 0
        if self.a != self.kh - 1:
            self.a += 1
            return 0
        self.a = 0
        if self.jc != (self.wo - 1) * self.s:
            self.jc += self.s
            return 0
        self.jc = 0
        if self.oi != self.ho - 1:
            self.oi += 1
            return self.s
        self.oi = 0
        return self.h - (self.ho - 1) * self.s

    def tick(self, i_valid, o_ready):
        take = i_valid and self.lag < self.rows
        readable = self._readable()
        en = not self.o_valid or o_ready
        row_done = take and self.wcol == self.w - 1
        if take:
            self.wcol = 0 if row_done else self.wcol + 1
        release = self._advance() if en and readable else 0
        self.lag += int(row_done) - release
        if en:
            self.o_valid = readable
        return take


class _Pad:
    """:class:`~bnnflow.hw.pad.PadMap`: the output register loads the next padded pixel when it is
    empty or being read, from the input only inside the map."""

    def __init__(self, pad):
        self.hp, self.wp = pad.padded_shape
        self.p = pad.pad
        self.row = self.col = 0
        self.o_valid = False

    def _interior(self):
        return (self.p <= self.row < self.hp - self.p) and (self.p <= self.col < self.wp - self.p)

    def i_ready(self, o_ready):
        return (not self.o_valid or o_ready) and self._interior()

    def tick(self, i_valid, o_ready):
        free = not self.o_valid or o_ready
        interior = self._interior()
        take = free and interior and i_valid
        if free and (take or not interior):
            last_col = self.col == self.wp - 1
            self.col = 0 if last_col else self.col + 1
            if last_col:
                self.row = 0 if self.row == self.hp - 1 else self.row + 1
            self.o_valid = True
        elif o_ready:
            self.o_valid = False
        return take


class _Queue:
    """``SyncFIFOBuffered``: ``depth - 1`` entries in memory, then the output register."""

    def __init__(self, depth):
        self.inner_depth = depth - 1
        self.inner = 0
        self.o_valid = False

    def i_ready(self, o_ready):
        return self.inner != self.inner_depth

    def tick(self, i_valid, o_ready):
        write = i_valid and self.inner != self.inner_depth
        inner_read = self.inner != 0 and (not self.o_valid or o_ready)
        self.inner += int(write) - int(inner_read)
        if inner_read:
            self.o_valid = True
        elif o_ready:
            self.o_valid = False
        return write


class _Buffer:
    """The input buffer of an MVTU (:mod:`bnnflow.hw.inbuf`)."""

    def __init__(self, mvtu):
        self.memory = mvtu.input_storage == "memory"
        # Widths in bits: n-bit inputs hold K * n bits and read SIMD * n a word.
        k, simd = mvtu.k * mvtu.in_bits, mvtu.fold.simd * mvtu.in_bits
        self.whole = mvtu.in_chunk == k
        self.sf_count = mvtu.sf
        per = simd // mvtu.in_chunk if not self.whole else 1
        chunks = -(-k // mvtu.in_chunk)
        self.per, self.last_slot = per, chunks - 1 - (self.sf_count - 1) * per
        self.nxt_full = False
        self.widx, self.last_w, self.slot = 0, False, 0

    def i_ready(self):
        if self.memory and self.whole:
            return not self.nxt_full and self.last_w
        return not self.nxt_full

    def comb(self, i_valid):
        """``(avail, step)`` this cycle."""
        if not self.memory:
            return self.nxt_full or i_valid, False
        fire = i_valid and not self.nxt_full
        if self.whole or self.per == 1:
            step = fire
        else:
            step = fire and self.slot == (self.last_slot if self.last_w else self.per - 1)
        return self.nxt_full or (step and self.last_w), step

    def tick(self, i_valid, take):
        avail, step = self.comb(i_valid)
        fire = i_valid and self.i_ready()
        if not self.memory:
            if take:
                if self.nxt_full:
                    self.nxt_full = False
            elif fire:
                self.nxt_full = True
            return fire
        complete = step and self.last_w
        if take and avail:
            self.nxt_full = False
        elif complete:
            self.nxt_full = True
        if step:
            last = self.last_w
            self.last_w = not last and self.widx == self.sf_count - 2
            self.widx = 0 if last else self.widx + 1
        if fire and not self.whole and self.per > 1:
            self.slot = 0 if step else self.slot + 1
        return fire


class _Mvtu:
    def __init__(self, mvtu):
        self.buf = _Buffer(mvtu)
        self.sf_count, self.nf_count = mvtu.sf, mvtu.nf
        self.out_chunks = mvtu.out_chunks
        self.busy = False
        self.sf = self.nf = 0
        self.last_sf = self.sf_count == 1
        self.last_nf = self.nf_count == 1
        # Control (fold done, vector done) on its way past the ROM and the popcount registers.
        self.delays = [(False, False)] * (mvtu.rom_latency + mvtu.pipeline)
        self.o_valid = False

    def i_ready(self, o_ready):
        return self.buf.i_ready()

    def tick(self, i_valid, o_ready):
        last_issue = self.busy and self.last_sf and self.last_nf
        ctrl0 = (self.busy and self.last_sf, last_issue)
        fold_done, finish = self.delays[-1] if self.delays else ctrl0
        load = fold_done if self.out_chunks else finish
        run = not (load and self.o_valid and not o_ready)
        take = run and (not self.busy or last_issue)
        avail, _ = self.buf.comb(i_valid)
        fire = self.buf.tick(i_valid, take)
        if run and self.busy:
            if self.sf_count > 1:
                if self.last_sf:
                    self.sf, self.last_sf = 0, False
                else:
                    self.last_sf = self.sf == self.sf_count - 2
                    self.sf += 1
            if self.nf_count > 1 and ctrl0[0]:
                if self.last_nf:
                    self.nf, self.last_nf = 0, False
                else:
                    self.last_nf = self.nf == self.nf_count - 2
                    self.nf += 1
        if take:
            self.busy = avail
        if run and self.delays:
            self.delays = [ctrl0, *self.delays[:-1]]
        if self.o_valid and o_ready:
            self.o_valid = False
        if run and load:
            self.o_valid = True
        return fire


class _Pool:
    def __init__(self, pool):
        (self.h, self.w, _), self.k, self.s = pool.in_shape, pool.window, pool.stride
        self.row = self.col = 0
        self.o_valid = False

    def _completes(self):
        return _window_end(self.row, self.k, self.s) and _window_end(self.col, self.k, self.s)

    def i_ready(self, o_ready):
        return not self._completes() or not self.o_valid or o_ready

    def tick(self, i_valid, o_ready):
        take = i_valid and self.i_ready(o_ready)
        completes = self._completes()
        if take:
            last_col = self.col == self.w - 1
            self.col = 0 if last_col else self.col + 1
            if last_col:
                self.row = 0 if self.row == self.h - 1 else self.row + 1
        if o_ready:
            self.o_valid = False
        if take and completes:
            self.o_valid = True
        return take


class _Argmax:
    def __init__(self, stages):
        self.regs = [False] * stages
        self.o_valid = False

    def i_ready(self, o_ready):
        return not self.o_valid or o_ready

    def tick(self, i_valid, o_ready):
        advance = self.i_ready(o_ready)
        if advance:
            chain = [i_valid, *self.regs]
            self.o_valid = chain[-1]
            self.regs = chain[:-1]
        return i_valid and advance


def _stages(top):
    """The chain of control models of ``top``, first to last, and which stage ends each
    layer's input (the input transfers counted per image are those of stage 0)."""
    stages = []
    for unit in top.layers:
        if isinstance(unit, ConvUnit):
            stages += [_Queue(unit.pad_queue_depth)] if unit.pad_queue_depth else []
            stages += [_Pad(unit.pad)] if unit.pad is not None else []
            if unit.window_kind != "registers":     # a pixel or row window over a ring
                stages += [_RingWindow(unit.window), _Mvtu(unit.mvtu)]
            else:
                stages += [_Window(unit.window), _Queue(unit.queue_depth), _Mvtu(unit.mvtu)]
        elif isinstance(unit, MaxPool):
            stages.append(_Pool(unit))
        elif isinstance(unit, MVTU):
            stages.append(_Mvtu(unit))
        else:
            raise ValueError(f"no cycle model for the unit {type(unit).__name__}")
    stages.append(_Argmax(top.argmax_stages))
    return stages


def stream_latency(top, images=2, max_cycles=None):
    """Edges from the transfer of the first image's last input to its output, for images fed
    back to back into ``top`` right after reset with ``o.ready`` high (see the module
    docstring); negative when the output leaves first (a max-pool that drops the map's last
    rows needs none of the last pixels).

    Parameters
    ----------
    top : BnnTop
        The design (only its units' parameters are read; nothing is elaborated).
    images : int
        Images fed (the first one's latency is returned; later ones only share the pipeline).
    max_cycles : int or None
        Give up after this many cycles (default: ``(images + 2) * (4 unit_ii + latency
        bound)``).

    Raises
    ------
    ValueError
        A unit without a cycle model, or no output within ``max_cycles`` (a bug).
    """
    return _run(top, images, 1, max_cycles)[0]


def stream_timing(top, images=TIMING_IMAGES, max_cycles=None):
    """``(latency, ii)`` of ``top`` as the verify bench's stall-free timing phase measures them:
    ``images`` images back to back right after reset, ``o.ready`` high; latency as
    :func:`stream_latency`, ``ii`` the mean spacing of the output transfers over the second
    half of the run (an ``int`` when whole).

    A conv network's II can exceed its slowest layer's cycles: a pool (or a strided conv)
    passes a row's pixels in a burst and none for the rows it drops, so a layer behind it that
    is nearly as slow as the slowest one falls behind during the bursts and holds the layers
    before it back (a 12x13 map: conv 3x3, conv 1x1, pool 3/1, conv 1x1 at 440, 440 and 432
    cycles per map runs at 489).
    """
    latency, outs = _run(top, images, images, max_cycles)
    return latency, mean_spacing(outs)


def mean_spacing(edges):
    """The II the verify bench reports: the mean spacing of output transfer ``edges`` over the
    second half of the run (an ``int`` when whole); ``None`` for fewer than two."""
    n = len(edges)
    if n < 2:
        return None
    h = (n - 1) // 2
    ii = (edges[-1] - edges[h]) / (n - 1 - h)
    return int(ii) if ii == int(ii) else ii


def _run(top, images, outputs, max_cycles):
    """Step the model with ``images`` images fed back to back until ``outputs`` outputs have
    transferred: ``(first image's latency, cycles of the output transfers)``."""
    stages = _stages(top)
    per_image = top.model.input.width * top.model.input.bits // top.in_chunk
    total = images * per_image
    if max_cycles is None:
        bound = sum(getattr(unit, "latency", 0) + unit.cycles for unit in top.layers)
        max_cycles = (images + 2) * (4 * top.unit_ii + bound + per_image) + 64
    sent, last_in, outs = 0, None, []
    for cycle in range(max_cycles):
        # Ready flows backwards (it may be combinational); valid flags are all registers.
        readys = [True] * (len(stages) + 1)
        for s in range(len(stages) - 1, -1, -1):
            readys[s] = stages[s].i_ready(readys[s + 1])
        valids = [sent < total] + [stage.o_valid for stage in stages]
        out_fire = valids[-1] and readys[-1]
        for s, stage in enumerate(stages):
            fired = stage.tick(valids[s], readys[s + 1])
            if s == 0 and fired:
                sent += 1
                if sent == per_image:
                    last_in = cycle
        if out_fire:
            outs.append(cycle)
        if len(outs) >= outputs and last_in is not None:
            # Negative when a max-pool drops the map's last rows: the result leaves before
            # the pixels it never reads are sent.
            return outs[0] - last_in, outs
    raise ValueError(f"the cycle model saw no output in {max_cycles} cycles")
