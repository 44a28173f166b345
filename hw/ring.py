"""The ring of rows a window reader keeps: its size, its writer and the walk over windows.

:class:`~bnnflow.hw.pixel_window.PixelWindow` (a pixel a transfer) and
:class:`~bnnflow.hw.row_window.RowWindow` (a window row a transfer) keep a map's recent rows in
memory and read windows out of it; they differ only in how a row is laid out in memory and in
how many transfers a window takes. What they share is built here, once:

* **Ring of rows.** Row ``g`` of the stream (counted over maps) lives in slot ``g mod R``.
  ``lag`` counts rows from the top row of the window being read to the row being written. A
  pixel is taken while ``lag < R`` (its slot holds no row still to be read), so the writer runs
  up to ``R - kh`` rows ahead of the reader. ``R = max(2 kh + d, kh + s)`` (``d`` the rows
  past the last window, ``s`` the stride, :func:`ring_rows`): the writer can take the next
  output row's rows, and at the end of a map the next map's first ``kh`` rows, while the reader
  still reads.
* **Window ready.** A window's first transfer is read once the writer is past its bottom-right
  pixel: ``lag > kh - 1``, or ``lag == kh - 1`` and the writer's column past the window's. The
  window's other transfers follow a cycle each; the writer never writes a row in ``top .. top +
  kh - 1``, so reads and writes never meet on an address.
* **Output.** The memories' synchronous read ports are the output register: the read enable is
  ``~o.valid | o.ready`` and ``o.valid`` is loaded with whether a transfer was read, so windows
  stream at one transfer a cycle while taken.
"""

from amaranth.hdl import Mux, Signal

from .window import check_shape

__all__ = ["RingWalk", "ring_rows", "ring_geometry", "ring_advance"]


def ring_rows(in_shape, kernel, stride=1):
    """Rows of the ring memory of a window reader: ``max(2 kh + d, kh + s)``, ``d`` the rows of
    an ``H``-row map past its last window."""
    h, kh, s = in_shape[0], kernel[0], stride
    dropped = h - ((h - kh) // s) * s - kh
    return max(2 * kh + dropped, kh + s)


def ring_geometry(unit, in_shape, kernel, stride):
    """Check the shapes of a window reader over a ring of rows and set what they share on
    ``unit``: ``in_shape``, ``kernel``, ``stride``, ``out_shape``, ``windows`` and ``rows``."""
    in_shape, kernel = tuple(in_shape), tuple(kernel)
    check_shape(in_shape, kernel, stride)
    unit.in_shape, unit.kernel, unit.stride = in_shape, kernel, stride
    (h, w, _), (kh, kw) = in_shape, kernel
    unit.out_shape = ((h - kh) // stride + 1, (w - kw) // stride + 1)
    unit.windows = unit.out_shape[0] * unit.out_shape[1]
    unit.rows = ring_rows(in_shape, kernel, stride)


def ring_advance(depth, row_words):
    """``advance(base, nrows)``: a ring address ``base`` moved ``nrows`` rows of ``row_words``
    words on in a ring of ``depth`` words (``nrows`` no more than its rows)."""
    def advance(base, nrows):
        step = nrows * row_words
        return Mux(base >= depth - step, base + step - depth, base + step)
    return advance


class RingWalk:
    """The counters of a window reader over a ring of ``unit.rows`` rows of ``row_words`` words.

    A helper that builds into the reader's module, not a component: the reader lays rows out in
    its memories from :attr:`wbase` (slot of the row being written) and :attr:`wcol`, and reads
    window transfers from :attr:`rbase` (slot of the window row being read) and :attr:`jc`
    (the window's first column).
    """

    def __init__(self, unit, row_words):
        self.unit = unit
        h, w, _ = unit.in_shape
        ho, wo = unit.out_shape
        self.depth = unit.rows * row_words
        self.advance = ring_advance(self.depth, row_words)
        self.lag = Signal(range(-h - 1, unit.rows + 2), name="lag")
        self.wbase = Signal(range(self.depth), name="wbase")
        self.wcol = Signal(range(w), name="wcol")
        self.take = Signal()
        self.top = Signal(range(self.depth), name="top")
        self.rbase = Signal(range(self.depth), name="rbase")
        self.oi = Signal(range(ho), name="out_row")
        self.jc = Signal(range((wo - 1) * unit.stride + 1), name="col_base")
        self.en = Signal()
        self.release = Signal(range(unit.rows + 1))

    def write(self, m, i, *, row_end=(), column=()):
        """Take pixels from stream ``i`` row after row; ``row_end`` and ``column`` are the
        reader's own statements when a pixel ends its row and when it does not."""
        w = self.unit.in_shape[1]
        m.d.comb += [i.ready.eq(self.lag < self.unit.rows), self.take.eq(i.valid & i.ready)]
        with m.If(self.take):
            with m.If(self.wcol == w - 1):
                m.d.sync += [self.wcol.eq(0), self.wbase.eq(self.advance(self.wbase, 1)),
                             *row_end]
            with m.Else():
                m.d.sync += [self.wcol.eq(self.wcol + 1), *column]

    def next_row(self):
        """The statement moving :attr:`rbase` to the window's next row."""
        return self.rbase.eq(self.advance(self.rbase, 1))

    def walk(self, m, o, *, started, inner, restart, loaded=(), next_column=(),
             first_column=()):
        """Read window after window into stream ``o`` (the read ports' data, which the caller
        connects, enabled by :attr:`en`).

        ``started`` is true past a window's first transfer; ``inner`` the ``(condition,
        statements)`` steps within a window, tried in order; ``restart`` what starts the next
        window's first transfer. ``loaded`` is registered beside ``o.valid``; ``next_column``
        and ``first_column`` are the reader's own statements when ``jc`` moves on by the stride
        and back to 0.
        """
        h, _, _ = self.unit.in_shape
        kh, kw = self.unit.kernel
        s = self.unit.stride
        ho, wo = self.unit.out_shape
        lag, jc, top, rbase, oi = self.lag, self.jc, self.top, self.rbase, self.oi
        first_ok = (lag > kh - 1) | ((lag == kh - 1) & (self.wcol >= jc + kw))
        readable = Signal()
        m.d.comb += [readable.eq(started | first_ok), self.en.eq(~o.valid | o.ready)]
        with m.If(self.en):
            m.d.sync += [o.valid.eq(readable), *loaded]
        with m.If(self.en & readable):
            for n, (condition, statements) in enumerate(inner):
                with (m.Elif if n else m.If)(condition):
                    m.d.sync += statements
            with m.Elif(jc != (wo - 1) * s):
                m.d.sync += [*restart, jc.eq(jc + s), rbase.eq(top), *next_column]
            with m.Elif(oi != ho - 1):
                m.d.comb += self.release.eq(s)
                m.d.sync += [*restart, jc.eq(0), oi.eq(oi + 1), top.eq(self.advance(top, s)),
                             rbase.eq(self.advance(top, s)), *first_column]
            with m.Else():
                # The map's last window: the top row moves on to the next map's first row.
                step = h - (ho - 1) * s
                m.d.comb += self.release.eq(step)
                m.d.sync += [*restart, jc.eq(0), oi.eq(0), top.eq(self.advance(top, step)),
                             rbase.eq(self.advance(top, step)), *first_column]
        row_done = self.take & (self.wcol == self.unit.in_shape[1] - 1)
        m.d.sync += lag.eq(lag + row_done - self.release)
