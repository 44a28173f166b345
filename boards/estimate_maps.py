"""The resource model of the units that stream maps: the conv layer's window unit and window
queue, and the max-pool unit (:mod:`bnnflow.hw.conv`, :mod:`bnnflow.hw.maxpool`).

A conv layer's matrix is an :class:`~bnnflow.hw.mvtu.MVTU` and is estimated as one
(:mod:`bnnflow.boards.estimate`, with whole windows of ``kh * kw * Cin`` bits as its input);
this module adds what sits in front of it, and the pool units, counted from the structure the
units build (``bench/conv_estimate.py`` compares the totals with Yosys):

* window unit (``Cin * n`` bit-channels for ``n``-bit inputs): the ``kh x kw x Cin`` window
  registers (which are its output), a valid bit, row and column counters; its line memory of
  ``W`` words of ``(kh - 1) * Cin`` bits (``H x W`` the padded map of a padded conv);
* pad unit of a padded conv (:class:`~bnnflow.hw.pad.PadMap`): the pixel register and its
  valid bit, row and column counters over the padded map and the two "inside the map" flags;
  the pad queue in front of it (when the sidecar's ``pad_queue_depth`` is not 0), counted as the
  window queue is, with ``Cin * n``-bit words;
* window queue (:class:`amaranth.lib.fifo.SyncFIFOBuffered`): a memory of ``depth - 1`` words
  of ``K`` bits (its output register is the memory's read register) and pointers;
* max-pool unit (``k x k`` windows every ``s`` pixels, ``P = ceil(k / s)`` of them open at
  once, 1 without overlap): ``P`` row registers and the output register (``(P + 1) C`` and a
  valid bit), its counters and window phases, and ``P`` line memories of ``Wo`` words of ``C``
  bits (``C * n`` for ``n``-bit levels, pooled by per-element comparators).

The memories go where Yosys puts them (:mod:`bnnflow.boards.memory_map`): their flip-flops
and LUT4 are :func:`memory_ffs` and :func:`memory_luts` (in logic every word; on iCE40 a block
RAM's two flip-flops per bit). :func:`map_unit_ffs` counts the registers outside the memories,
as Yosys does before mapping them (tested on the units alone).

A conv layer whose windows are read out of a ring of rows (a pixel or a window row a cycle,
:func:`bnnflow.hw.conv.window_kind`) has no window registers and no queue: its counters and
addresses are counted as the unit declares them, its ring (``kw`` bank memories for rows) goes
where Yosys puts it, and its LUT4 are fitted to Yosys' counts of the units alone.

LUT4: one per window bit (the load of the window registers) and per queue bit, and 12 per
counter set (the pad unit: one per pixel bit, its select, and a counter set; not fitted); a
pool's per element bit and open window, fitted to Yosys' counts of the unit alone
(``bench/pool_unit.py``).
"""

import math

from ..tool_reports import ECP5_COMB_PER_LUTRAM
from .memory_map import placement

__all__ = ["map_unit_memories", "map_unit_ffs", "map_memory_ffs", "map_unit_luts", "memory_ffs",
           "memory_luts", "CONV_KINDS"]

#: Kinds whose unit is a :class:`~bnnflow.hw.conv.ConvUnit` (their window bits: ``in_bits``
#: per window element).
CONV_KINDS = ("binary_conv2d", "ternary_conv2d")


def _bits(value):
    return max(1, int(value).bit_length())


def _counters(shape):
    h, w, _ = shape
    return _bits(h - 1) + _bits(w - 1)


def _pool_slots(layer):
    """Windows of a max-pool open at once along an axis, ``ceil(k / s)``."""
    return -(-layer.window // layer.stride)


def _queue_depth(unit_sidecar):
    return unit_sidecar["queue_depth"]


def _queue_ffs(depth):
    """A :class:`amaranth.lib.fifo.SyncFIFOBuffered`'s control: its output valid bit, pointers
    and level (0 for no queue; the output register is its memory's read register,
    :func:`memory_ffs`)."""
    return 1 + 2 * _bits(depth) + 1 if depth else 0


def memory_ffs(family, width, depth, transparent=False, no_rw_check=False):
    """Flip-flops of a ``width x depth`` memory with a synchronous read port where Yosys puts
    it (:func:`bnnflow.boards.memory_map.placement`): in logic every word and the read
    register, in LUT RAM the read register, in an ECP5 block RAM none, beside an iCE40 block RAM
    two per bit (measured as on the input memories, :func:`bnnflow.boards.estimate._input_ffs`;
    none with ``no_rw_check``, measured on the pixel window's ring); transparency the cell
    lacks adds the written word and an address-match flag."""
    kind = placement(family, width, depth, transparent=transparent,
                     no_rw_check=no_rw_check).kind
    ffs = {"logic": width * (depth + 1), "lutram": width,
           "bram": 2 * width if family == "ice40" and not no_rw_check else 0}[kind]
    return ffs + (width + 1 if transparent and kind != "logic" else 0)


def memory_luts(family, width, depth, transparent=False, no_rw_check=False):
    """LUT4 of a memory Yosys puts in logic: about one per stored bit (the read multiplexer)
    and one per word (its write enable); in ECP5 LUT RAM the ``TRELLIS_COMB`` cells of its
    ``TRELLIS_DPR16X4`` (:data:`~bnnflow.tool_reports.ECP5_COMB_PER_LUTRAM`); a LUT RAM's or
    block RAM's emulated transparency a select per bit. 0 in block RAM otherwise."""
    place = placement(family, width, depth, transparent=transparent, no_rw_check=no_rw_check)
    if place.kind == "logic":
        return width * depth + depth
    cells = ECP5_COMB_PER_LUTRAM * place.cells if place.kind == "lutram" else 0
    return cells + (width if transparent else 0)


def _pixels(unit_sidecar):
    return unit_sidecar.get("window") == "pixels"


def _rows(unit_sidecar):
    return unit_sidecar.get("window") == "rows"


def _upto(n):
    """Bits of a signal of ``range(n)``."""
    return (n - 1).bit_length()


def _pixel_window_ffs(layer, unit_sidecar):
    """A pixel window's registers (:class:`~bnnflow.hw.pixel_window.PixelWindow`, as its
    signals are declared): the ring's write, top-row and read-row addresses, the writer's
    column, the signed lag, the reader's window row, column and pixel, and the valid bit (the
    read register is the memory's)."""
    (h, w, _), (kh, kw) = layer.padded_shape, layer.kernel
    ho, wo = layer.out_shape[:2]
    rows = unit_sidecar["ring_rows"]
    s = layer.stride
    lag = max(h.bit_length(), (rows + 1).bit_length()) + 1
    # Yosys drops the window row when the map's last row releases as many rows as the
    # others (s), and merges the read-row address into the top row's for kh = 1.
    row = _upto(ho) if h - (ho - 1) * s != s else 0
    addresses = (2 if kh == 1 else 3) * _upto(rows * w)
    return (addresses + _upto(w) + lag + row + _upto((wo - 1) * s + 1) + _upto(kh) + _upto(kw)
            + 1)


def _row_window_ffs(layer, unit_sidecar):
    """A row window's registers (:class:`~bnnflow.hw.row_window.RowWindow`): a pixel window's
    (:func:`_pixel_window_ffs`, over ring words of ``kw`` pixels) without the pixel counter,
    plus the writer's bank and word, the reader's word, bank and the bank it read."""
    (_, w, _), (kh, kw) = layer.padded_shape, layer.kernel
    words = -(-w // kw)
    pixel = _pixel_window_ffs(layer, unit_sidecar)
    rows = unit_sidecar["ring_rows"]
    addresses = (2 if kh == 1 else 3)
    return (pixel - _upto(kw) - addresses * (_upto(rows * w) - _upto(rows * words))
            + 3 * _upto(kw) + 2 * _upto(words))


def _pad_ffs(layer, unit_sidecar):
    """The pad unit of a padded conv and its pad queue (0 without padding): pixel register,
    valid bit, counters over the padded map, two flags."""
    if not layer.pad:
        return 0
    pixel = layer.in_shape[2] * layer.in_bits
    return (pixel + 1 + _counters(layer.padded_shape) + 2
            + _queue_ffs(unit_sidecar.get("pad_queue_depth", 0)))


def map_unit_memories(layer, unit_sidecar):
    """``(width, depth, transparent)`` of the memories of a conv layer's window unit (its line
    memory reads what it writes in the same cycle) and queues, or of a pool unit's line
    memories (empty for other kinds); a pixel window's ring is ``(width, depth, False, True)``,
    the last entry ``no_rw_check`` (:func:`bnnflow.boards.memory_map.placement`), a row
    window's ``kw`` such banks of ``ceil(W / kw)`` words a row."""
    if layer.kind in CONV_KINDS:
        (kh, kw), (_, w, cin) = layer.kernel, layer.padded_shape
        cin *= layer.in_bits     # n-bit elements: Cin * n bit-channels
        pad_depth = unit_sidecar.get("pad_queue_depth", 0)
        pad = [(cin, pad_depth - 1, False)] if pad_depth else []
        if _pixels(unit_sidecar):
            return [(cin, unit_sidecar["ring_rows"] * w, False, True)] + pad
        if _rows(unit_sidecar):
            return [(cin, unit_sidecar["ring_rows"] * -(-w // kw), False, True)] * kw + pad
        memories = [((kh - 1) * cin, w, True)] if kh > 1 else []
        depth = _queue_depth(unit_sidecar)
        return memories + [(kh * kw * cin, depth - 1, False)] + pad
    if layer.kind == "maxpool2d":
        return ([(layer.in_shape[2] * layer.bits, max(layer.out_shape[1], 1), True)]
                * _pool_slots(layer))
    return []


def map_memory_ffs(layer, unit_sidecar, family):
    """Flip-flops of the memories of a conv or pool layer's units where Yosys puts them
    (:func:`memory_ffs`; their read registers included)."""
    return sum(memory_ffs(family, *m) for m in map_unit_memories(layer, unit_sidecar))


def map_unit_ffs(layer, unit_sidecar):
    """Flip-flops of a conv layer's window unit and queues, or of a pool unit, outside their
    memories (what Yosys counts before mapping memories; :func:`map_memory_ffs` adds those),
    0 for other kinds."""
    if layer.kind in CONV_KINDS and _pixels(unit_sidecar):
        return _pixel_window_ffs(layer, unit_sidecar) + _pad_ffs(layer, unit_sidecar)
    if layer.kind in CONV_KINDS and _rows(unit_sidecar):
        return _row_window_ffs(layer, unit_sidecar) + _pad_ffs(layer, unit_sidecar)
    if layer.kind in CONV_KINDS:
        k = layer.fan_in * layer.in_bits
        depth = _queue_depth(unit_sidecar)
        phases = 2 * (layer.stride - 1).bit_length()     # a stride's phase counters
        return (k + 1 + _counters(layer.padded_shape) + phases
                + _queue_ffs(depth) + _pad_ffs(layer, unit_sidecar))
    if layer.kind == "maxpool2d":
        c, p = layer.in_shape[2] * layer.bits, _pool_slots(layer)
        # Per axis: an open flag and a phase in 0..k-1 per open window, and which of them
        # starts next; the index of the next row window to complete.
        axes = 2 * (p * (1 + (layer.window - 1).bit_length()) + (p - 1).bit_length())
        return ((p + 1) * c + 1 + _counters(layer.in_shape) + axes
                + layer.out_shape[1].bit_length())
    return 0


def map_unit_luts(layer, unit_sidecar, family="ice40"):
    """LUT4 of a conv layer's window unit and queue, or of a pool unit, with their memories'
    (:func:`memory_luts`; 0 otherwise)."""
    memories = sum(memory_luts(family, *m) for m in map_unit_memories(layer, unit_sidecar))
    return memories + _unit_luts(layer, unit_sidecar, family)


def _pad_luts(layer, unit_sidecar):
    """A padded conv's pad unit and pad queue (0 without padding)."""
    if not layer.pad:
        return 0
    pixel, pad_depth = layer.in_shape[2] * layer.in_bits, unit_sidecar.get("pad_queue_depth", 0)
    return pixel + 12 + ((pixel + 3 * _bits(pad_depth)) if pad_depth else 0)


#: LUT4 per bit the row window's output rotation selects (``kw * C`` bits from ``kw`` banks,
#: ``kw - 1`` inputs past the first): least squares over its pixel-window count on nine units
#: alone, 2x2 to 5x5 kernels, 1 to 32 channels (``kh x kw`` over the pixel formula: iCE40
#: -11..+13 %, ECP5 -25..+26 %; Yosys logic measure, memories left out).
ROW_MUX_LUTS = {"ice40": 1.6, "ecp5": 1.7}


def _unit_luts(layer, unit_sidecar, family):
    if layer.kind in CONV_KINDS and _rows(unit_sidecar):
        kw, pixel = layer.kernel[1], layer.in_shape[2] * layer.in_bits
        return (_unit_luts(layer, {**unit_sidecar, "window": "pixels"}, family)
                + round(ROW_MUX_LUTS[family] * kw * pixel * (kw - 1)))
    if layer.kind in CONV_KINDS and _pixels(unit_sidecar):
        # Address adders and wraps, the lag's compare and update, the reader's counters;
        # fitted to Yosys' counts of six units alone (ring addresses of 6 to 8 bits: iCE40
        # 91-151 LUT4, ECP5 141-262 LUT4 + 2 x CCU2C; within 30 %).
        bits = _bits(unit_sidecar["ring_rows"] * layer.padded_shape[1] - 1)
        per_bit, base = (15, 12) if family == "ice40" else (30, -10)
        return per_bit * bits + base + _pad_luts(layer, unit_sidecar)
    if layer.kind in CONV_KINDS:
        return (2 * layer.fan_in * layer.in_bits + 24
                + math.ceil(_bits(_queue_depth(unit_sidecar)) * 3) + _pad_luts(layer, unit_sidecar))
    if layer.kind == "maxpool2d":
        # Per element bit and open window: ORs, or for n-bit levels comparators and selects,
        # and the selects between windows; fitted to bench/pool_unit.json (within 15 %).
        c, b, p = layer.in_shape[2], layer.bits, _pool_slots(layer)
        return c * b * ((7 * p - 4) if b == 1 else (16 * p - 12)) + 24
    return 0
