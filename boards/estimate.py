"""The resource model: what a network folded one way needs of a device, before any tool runs.

Estimates of ``model`` folded as ``folding`` inside the synthesis wrapper: LUT4
(:func:`estimate_luts`), flip-flops (:func:`estimate_ffs`), logic cells (:func:`logic_need`,
:func:`estimate_logic`) and the block RAMs of the weight ROMs (:func:`estimate_brams`,
:func:`estimate_brams_used`, :func:`estimate_rom_luts` for ROMs kept in logic), with the
constants they were calibrated on (Yosys 0.70 and nextpnr 0.11.1 counts; boards/README.md lists
the designs), and how many block RAMs read
every cycle still route on ECP5 (:func:`routable_brams`). :func:`measured_need` applies the
logic-cell rule to Yosys' real counts (read by :mod:`bnnflow.tool_reports`).
:data:`ROM_REGISTER` is here because the flip-flop estimate follows it.

Layers are read through the layer-kind protocol (:mod:`bnnflow.model.kinds`: cycles of a
folding, ``neurons``, ``fan_in``, output pixels); the formulas are those of the structure
:class:`~bnnflow.hw.mvtu.MVTU` builds, for dense layers and the matrix of conv layers, plus
what :mod:`bnnflow.boards.estimate_maps` counts for the units that stream maps (window unit,
window queue, max-pool). Every memory (weight ROMs, input memories, line memories, queues,
threshold tables) is placed where Yosys' cost rule puts it (:mod:`bnnflow.boards.memory_map`).
A model with a kind outside :data:`MODELLED_KINDS` is refused rather than estimated as MVTUs.
"""

from ..hw.folding import LayerFold
from .estimate_maps import (
    CONV_KINDS,
    map_memory_ffs,
    map_unit_ffs,
    map_unit_luts,
    map_unit_memories,
)
from .estimate_mvtu import (
    LUT4_PER_XNOR_BIT,
    argmax_luts,
    mvtu_luts,
    rom_columns,
    rom_in_logic,
    rom_luts,
    rom_words,
    threshold_tables,
)
from .memory_map import placement
from .targets import rom_blocks

__all__ = ["measured_need", "estimate_ffs", "estimate_luts", "estimate_logic", "logic_need",
           "estimate_brams", "estimate_brams_used", "estimate_rom_luts", "routable_brams",
           "LUT4_PER_XNOR_BIT", "UNPACKED_FF_SHARE", "ECP5_ROUTABLE_BRAMS", "ROM_REGISTER",
           "MAP_LUT_SCALE",
           "MODELLED_KINDS"]

#: Layer kinds whose hardware unit these estimates model (``binary_dense``: the MVTU;
#: ``ternary_dense``: the MVTU with a mask, its ROM twice as wide and the AND inside the XNOR's
#: LUT4; ``binary_conv2d`` and ``ternary_conv2d``: window unit, queue and MVTU, with ``n``-bit
#: inputs ``n`` times the window bits; ``maxpool2d``).
MODELLED_KINDS = ("binary_dense", "ternary_dense", "binary_conv2d", "ternary_conv2d",
                  "maxpool2d")

#: Share of the flip-flops that take a logic cell of their own on iCE40: a DFF shares a cell
#: only with the LUT that drives it (measured 0.62-0.72; boards/README.md, "Fit estimates").
UNPACKED_FF_SHARE = 0.72

#: The map units' LUT4 (:func:`~bnnflow.boards.estimate_maps.map_unit_luts`, fitted on units
#: alone) in whole flattened designs, fitted with the MVTU model (``bench/unit_luts.py``).
MAP_LUT_SCALE = {"ice40": 0.99, "ecp5": 0.937}

#: ``rom_register`` of :class:`~bnnflow.hw.mvtu.MVTU` per family: the weight register after
#: the ROM pays on ECP5 (+40 % Fmax), not on the UP5K (flip-flops it cannot spare; hw/README.md,
#: "Weight register after the ROM"). ``synthesize`` and ``build`` pass it to ``BnnTop``.
ROM_REGISTER = {"ice40": False, "ecp5": True}


def _modelled(model):
    """``model.layers``, after checking that these estimates model every layer's kind."""
    for j, layer in enumerate(model.layers):
        if layer.kind not in MODELLED_KINDS:
            raise ValueError(f"layer {j} ({layer.name}): no resource estimate for layer kind "
                             f"{layer.kind!r} (estimated: {', '.join(MODELLED_KINDS)})")
    return model.layers


def _mvtu_layers(model, folding):
    """``(layer, fold)`` of every layer built around an MVTU (dense and conv layers)."""
    return [(layer, fold) for layer, fold in zip(_modelled(model), folding, strict=True)
            if layer.kind != "maxpool2d"]


def _map_units(model, folding):
    """``(layer, unit sidecar entries)`` of the conv and pool layers (window queue depth, and
    the pad queue's of a padded conv)."""
    from ..hw.conv import pad_queue_depth, pixel_period, window_kind, window_queue_depth
    from ..hw.ring import ring_rows

    units = []
    for j, (layer, fold) in enumerate(zip(_modelled(model), folding, strict=True)):
        if layer.kind in CONV_KINDS:
            period = pixel_period(model, folding, j)
            kind = window_kind(layer, fold)
            read = kind != "registers"      # a pixel or row window: a ring, no queue
            rows = ring_rows(layer.padded_shape, layer.kernel, layer.stride)
            units.append((layer, {
                "queue_depth": 0 if read else window_queue_depth(layer, fold, period),
                "pad_queue_depth": pad_queue_depth(layer, period),
                "window": kind, **({"ring_rows": rows} if read else {})}))
        elif layer.kind == "maxpool2d":
            units.append((layer, {}))
    return units


def _roms(model, folding):
    """``(width, depth)`` of the weight ROM of every folded layer (more than one ROM word)."""
    for layer, fold in _mvtu_layers(model, folding):
        words = rom_words(layer, fold)
        if words > 1:
            yield fold.pe * fold.simd * layer.weight_bits, words


def _threshold_tables(model, folding):
    """:func:`threshold_tables` of every MVTU."""
    for layer, fold in _mvtu_layers(model, folding):
        yield from threshold_tables(layer, fold)


def _input_memories(model, folding):
    """``(width, depth, transparent)`` of the input-vector memory of every layer with ``SF >
    1`` (:class:`~bnnflow.hw.inbuf.MemoryBuffer`: two banks of ``2**ceil(log2 SF)`` words), and
    the memories of the map units (:func:`~bnnflow.boards.estimate_maps.map_unit_memories`)."""
    for layer, fold in _mvtu_layers(model, folding):
        sf = -(-layer.fan_in // fold.simd)
        if sf > 1:
            yield fold.simd * layer.in_bits, 2 << (sf - 1).bit_length(), False
    for layer, unit in _map_units(model, folding):
        yield from map_unit_memories(layer, unit)


def _bram_cells(family, width, depth, *, rom=True, transparent=False, no_rw_check=False):
    place = placement(family, width, depth, rom=rom, transparent=transparent,
                      no_rw_check=no_rw_check)
    return place.cells if place.kind == "bram" else 0


def _other_brams(family, model, folding):
    """Block RAMs of what is not a weight ROM: the input memories and threshold tables Yosys
    puts in block RAM (:mod:`.memory_map`: the iCE40 has no LUT RAM, so small ones become
    flip-flops; the ECP5 keeps shallow ones in ``TRELLIS_DPR16X4`` LUT RAM)."""
    return (sum(_bram_cells(family, w, d, rom=False, transparent=t, no_rw_check=bool(rest))
                for w, d, t, *rest in _input_memories(model, folding))
            + sum(_bram_cells(family, w, d) for w, d in _threshold_tables(model, folding)))


def estimate_brams(model, folding, family, *, deeper_than=1):
    """Block RAMs the weight ROMs of the folded layers (more than ``deeper_than`` words) would
    need at best, and the input memories and threshold tables Yosys puts in block RAM need."""
    return (sum(rom_blocks(family, width, depth) for width, depth in _roms(model, folding)
                if depth > deeper_than)
            + _other_brams(family, model, folding))


#: ROMs of at most this many words are left out of :func:`fit_brams`: a column of 4 words is
#: one of 16 patterns, and Yosys merges equal columns, so such a ROM is at most 16 small LUTs
#: (its cost is the XNORs it feeds, which the logic estimate counts) however wide it is.
LUT_ROM_WORDS = 4


def fit_brams(model, folding, family):
    """Block RAMs :func:`~bnnflow.boards.fit.suggest_ii` asks of a folding: those of
    :func:`estimate_brams` without the ROMs of at most :data:`LUT_ROM_WORDS` words. (Counting
    those too refused II 2048 for a ternary, 2-bit, 8-bit-input cnv-mnist on the ECP5-25k, 94
    block RAMs at best for 56, which placed with 14 and its 3-word ROMs in LUTs.)"""
    return estimate_brams(model, folding, family, deeper_than=LUT_ROM_WORDS)


def estimate_brams_used(model, folding, family):
    """Block RAMs Yosys is expected to use: those of :func:`estimate_brams` with only the ROMs
    that it puts in block RAM (:func:`bnnflow.boards.memory_map.placement`; the others stay in
    LUTs). :func:`estimate_brams` counts every folded layer's ROM (the block RAM it would
    need)."""
    return (sum(_bram_cells(family, w, d) for w, d in _roms(model, folding))
            + _other_brams(family, model, folding))


def estimate_rom_luts(model, folding, family="ice40"):
    """LUT4 the weight ROMs would take in logic instead
    (:func:`~bnnflow.boards.estimate_mvtu.rom_luts`)."""
    return round(sum(rom_luts(family, width, depth) for width, depth in _roms(model, folding)))


def _bits_for(value):
    return max(1, int(value).bit_length())


def _popcount_ffs(width, stages):
    """Flip-flops of one :class:`~bnnflow.hw.popcount.Popcount` tree (as it builds them)."""
    from ..hw.popcount import register_levels

    if stages == 0:
        return 0
    groups = width // 3 + width % 3
    levels = (1 + (groups - 1).bit_length()) if width >= 3 else (width - 1).bit_length()
    regs = register_levels(levels, stages)
    nodes = [1] * width
    total = regs.count(0) * width
    first = 1
    if width >= 3:
        nodes = [3] * (width // 3) + [1] * (width % 3)
        total += regs.count(1) * sum(_bits_for(v) for v in nodes)
        first = 2
    for level in range(first, levels + 1):
        nxt = [nodes[j] + nodes[j + 1] for j in range(0, len(nodes) - 1, 2)]
        nodes = nxt + nodes[len(nodes) - len(nodes) % 2:]
        total += regs.count(level) * sum(_bits_for(v) for v in nodes)
    return total


def _layer_streams(model, folding):
    """Per layer ``(in_chunk, out_chunks)``, as :class:`~bnnflow.hw.top.BnnTop` cuts them."""
    from ..hw.top import layer_chunks

    return layer_chunks(model, folding)


def _mvtu_streams(model, folding):
    """``(in_chunk, out_chunks)`` of each MVTU of :func:`_mvtu_layers`: a conv layer's MVTU
    takes whole windows from its queue, pixels from a pixel window or window rows from a row
    window (:func:`bnnflow.hw.conv.window_kind`), and sends whole output pixels."""
    from ..hw.conv import window_kind

    def conv_chunk(layer, fold):
        kind = window_kind(layer, fold)
        elements = {"pixels": layer.in_shape[2], "rows": layer.kernel[1] * layer.in_shape[2],
                    "registers": layer.fan_in}[kind]
        return elements * layer.in_bits

    return [((conv_chunk(layer, fold), False) if layer.kind in CONV_KINDS else stream)
            for layer, fold, stream in zip(_modelled(model), folding,
                                           _layer_streams(model, folding), strict=True)
            if layer.kind != "maxpool2d"]


def _memory_in_ffs(family, simd, sf):
    """Whether Yosys turns the input memory of a layer with ``sf`` slices of ``simd`` bits
    into flip-flops (:mod:`.memory_map`)."""
    return placement(family, simd, 2 << (sf - 1).bit_length()).kind == "logic"


def _input_ffs(k, fold, in_chunk, family):
    """Flip-flops of a layer's input buffer (:mod:`bnnflow.hw.inbuf`) and its slice register."""
    sf = -(-k // fold.simd)
    if sf == 1:
        return 2 * k + 1                    # current and next vector, next-full flag
    ff = 3 + _bits_for(sf - 1)              # bank, next-full, word index, last-word flag
    if _memory_in_ffs(family, fold.simd, sf):
        ff += (2 << (sf - 1).bit_length()) * fold.simd + fold.simd     # words, read register
    elif family == "ice40":
        # Measured on every SB_RAM40_4K input memory (192-64-64-64-10 at II 256/512,
        # 784-64-64-64-10 at II 512/1024): Yosys adds 2 x SIMD flip-flops beside the block
        # (named after its WDATA and RDATA nets).
        ff += 2 * fold.simd
    else:
        ff += fold.simd         # the read-data register of an ECP5 LUT RAM (async read)
    per = fold.simd // in_chunk if in_chunk < k else 1
    if per > 1:
        ff += (per - 1) * in_chunk + _bits_for(per - 1)     # word register, slot counter
    return ff


def estimate_ffs(model, folding, pipeline=0, family="ice40", *, rom_register=None):
    """Flip-flops of ``model`` folded as ``folding`` inside the synthesis wrapper.

    Counted from the structure :class:`~bnnflow.hw.mvtu.MVTU` builds, per layer: the input
    buffer (two ``K``-bit registers when ``SF == 1``; with ``SF > 1`` the vectors are in
    memory and only its write counters, flags and, for chunks narrower than ``SIMD``, the
    word register count), sequencer counters, the ROM-stage input delay (``SIMD``, only from
    registers: a memory's read port is that delay), the popcount pipeline registers,
    accumulators (``PE * bits(K)`` when ``SF > 1``, binary hidden layers
    ``PE * (bits(K + 1) + 1)``: they accumulate popcount - threshold), and the output: one
    fold's ``PE`` lanes when the layer sends its folds as chunks
    (:func:`bnnflow.hw.top.layer_chunks`), else neuron-fold collection and output registers
    (``N * lane``); plus the argmax output register and the wrapper (``2 K0 + W_out + 2``: its
    shift register and the network's input register). A weight ROM that Yosys puts in LUTs
    (fewer than 128 words on iCE40) adds its read-data register; ``rom_register``
    (:class:`~bnnflow.hw.mvtu.MVTU`; ``None``: the family's :data:`ROM_REGISTER`) adds the
    weight register and its priming flag to every ROM, and a ROM depth that is not a power of
    two a wrap flag. Each of these registers is ``PE * SIMD`` bits, or for a ROM in logic the
    ROM's distinct non-constant columns (:func:`~bnnflow.boards.estimate_mvtu.rom_columns`:
    Yosys merges equal register bits and drops constant ones). boards/README.md compares it
    with Yosys' counts.
    """
    if rom_register is None:
        rom_register = ROM_REGISTER[family]
    layers = _modelled(model)
    streams = _mvtu_streams(model, folding)
    total = sum(_layer_ffs(layer, fold, in_chunk, out_chunks, pipeline, family, rom_register)
                for (layer, fold), (in_chunk, out_chunks)
                in zip(_mvtu_layers(model, folding), streams, strict=True))
    total += sum(map_unit_ffs(layer, unit) + map_memory_ffs(layer, unit, family)
                 for layer, unit in _map_units(model, folding))
    last = layers[-1]
    w_out = _bits_for(last.out_width - 1) + last.out_width * _bits_for(last.fan_in)
    argmax = _argmax_ffs(last.out_width, _bits_for(last.fan_in), pipeline)
    k0 = _layer_streams(model, folding)[0][0]   # a pixel for conv networks
    return total + argmax + (2 * k0 + w_out + 2)


def _layer_ffs(layer, fold, in_chunk, out_chunks, pipeline, family, rom_register):
    """Flip-flops of one layer's MVTU (see :func:`estimate_ffs`)."""
    k, n = layer.fan_in, layer.neurons
    nf, sf = -(-n // fold.pe), -(-k // fold.simd)
    words = rom_words(layer, fold)
    # n-bit inputs: the buffer holds n bits per input, one popcount tree per bit plane.
    b = layer.in_bits
    # Bits per output element: popcounts of the output layer, else activations.
    lane = _bits_for(k * ((1 << b) - 1)) if layer.is_output else layer.activation_bits
    ctrl = 4 + _bits_for(max(nf - 1, 1))
    ff = (_input_ffs(k * b, LayerFold(fold.pe, fold.simd * b), in_chunk, family) + 2
          + _bits_for(sf) + _bits_for(nf))
    if words > 1:
        ff += _bits_for(words) + ctrl + (fold.simd if sf == 1 else 0)
        width = fold.pe * fold.simd * layer.weight_bits
        # A register loaded from a ROM in logic keeps a flip-flop per distinct column.
        in_logic = rom_in_logic(family, width, words)
        kept = rom_columns(layer, fold) if in_logic else width
        if in_logic:
            ff += kept
        if rom_register:
            ff += kept + 1
        if words & (words - 1):
            ff += 1
    ff += pipeline * ctrl + fold.pe * b * _popcount_ffs(fold.simd, pipeline)
    if sf > 1:
        # Binary hidden layers accumulate popcount - threshold (signed, one bit wider).
        fused = layer.activation_bits == 1
        ff += fold.pe * (_bits_for(k + 1) + 1 if fused else _bits_for(k))
    if out_chunks:
        ff += fold.pe * lane + 1
    else:
        ff += (nf - 1) * fold.pe * lane + n * lane
    return ff


def _argmax_ffs(classes, width, pipeline):
    """Flip-flops of :class:`~bnnflow.hw.argmax.Argmax`: its inner register rows (survivors,
    valid and every score passed through) and its output register."""
    from ..hw.argmax import argmax_levels, class_width, register_rows

    levels = argmax_levels(classes)
    cw = class_width(classes)
    stages = max(0, min(pipeline, levels - 1))
    total = 1 + cw + classes * width                # output register and its valid bit
    survivors = classes
    for level in range(1, levels + 1):
        survivors = -(-survivors // 2)
        total += register_rows(levels, stages).count(level) * (
            survivors * (cw + width) + 1 + classes * width)
    return total


def estimate_luts(model, folding, family="ice40"):
    """LUT4 (the logic measure of :attr:`~bnnflow.tool_reports.CellCounts.logic`) of
    ``model`` folded as ``folding`` inside the synthesis wrapper.

    Each MVTU by :func:`~bnnflow.boards.estimate_mvtu.mvtu_luts` (fully parallel layers
    :data:`LUT4_PER_XNOR_BIT` per weight, folded ones a linear model of their structure fitted
    to Yosys), the conv and pool layers' map units by
    :func:`~bnnflow.boards.estimate_maps.map_unit_luts`, the argmax and wrapper by
    :func:`~bnnflow.boards.estimate_mvtu.argmax_luts`.
    """
    total = MAP_LUT_SCALE[family] * sum(map_unit_luts(layer, unit, family)
                                        for layer, unit in _map_units(model, folding))
    streams = _mvtu_streams(model, folding)
    for (layer, fold), (in_chunk, out_chunks) in zip(_mvtu_layers(model, folding), streams,
                                                     strict=True):
        total += mvtu_luts(layer, fold, in_chunk, out_chunks, family)
    total += argmax_luts(_modelled(model)[-1], family)
    return round(total)


def logic_need(family, lut4, ff):
    """Logic cells a design with these counts needs, to compare with ``Target.lut4``.

    ``lut4`` is the logic measure of :attr:`~bnnflow.tool_reports.CellCounts.logic` (on ECP5
    nextpnr's ``TRELLIS_COMB`` cells: LUT4, carry cells and LUT RAM). iCE40: ``LUT4 +
    UNPACKED_FF_SHARE * FF`` (one LUT4 and one DFF per cell). ECP5: the larger of the logic
    measure and the flip-flops (a slice holds two of each).
    """
    if family == "ice40":
        return round(lut4 + UNPACKED_FF_SHARE * ff)
    return max(lut4, ff)


def measured_need(counts):
    """Logic cells a synthesized design needs: :func:`logic_need` of Yosys' counts (a
    :class:`~bnnflow.tool_reports.CellCounts`, through its logic measure)."""
    return logic_need(counts.family, counts.logic, counts.ff)


def estimate_logic(model, folding, family, pipeline=0):
    """Estimated logic cells (:func:`logic_need` of :func:`estimate_luts` and
    :func:`estimate_ffs`)."""
    return logic_need(family, estimate_luts(model, folding, family),
                      estimate_ffs(model, folding, pipeline, family))


#: Block RAMs an ECP5 design may read every cycle and still be expected to route: every ROM
#: word is read each cycle (75 and 129 routed, 133 and 146 did not; boards/README.md has the
#: measurements).
ECP5_ROUTABLE_BRAMS = 130


def routable_brams(family, available):
    """Block RAMs :func:`~bnnflow.boards.fit.suggest_ii` and
    :func:`~bnnflow.boards.fit.fit_folding` let a design use on ``family``."""
    if family == "ecp5":
        return min(available, ECP5_ROUTABLE_BRAMS)
    return available
