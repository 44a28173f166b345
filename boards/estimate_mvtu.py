"""LUT4 of an MVTU and of the argmax: a linear model of their structure, fitted to Yosys.

:func:`mvtu_luts` counts the logic of one :class:`~bnnflow.hw.mvtu.MVTU` (a dense layer, or
the matrix of a conv layer) from the terms its structure has (:func:`mvtu_terms`): XNOR bits
and popcount trees per cycle, accumulators, threshold comparators and their per-fold select,
the input register or memory, the output collection and the weight ROM when Yosys keeps it in
logic (:func:`rom_luts`). The coefficients per family (:data:`MVTU_LUT`) were fitted on
2026-12-06 to Yosys 0.70 counts of 210 whole flattened designs (random MLPs of 3 to 5 layers
and the conv nets of ``bench/conv_estimate.py``; binary, 2-bit activations, ternary weights,
8-bit inputs; auto foldings at II 16 to 16384 and fully parallel ones; per module, ECP5 LUT4
moved by up to 25 % against the flattened design), the iCE40 ``-noflatten`` counts of 105 of
them checking the terms unit by unit; ``bench/unit_luts.py`` and ``bench/README.md``, "LUT4 of
an MVTU, refitted". The logic measure is :attr:`bnnflow.tool_reports.CellCounts.logic` (on
ECP5 nextpnr's ``TRELLIS_COMB``: carry cells 3.2, LUT RAM 6).
"""

import numpy as np

from ..tool_reports import ECP5_COMB_PER_LUTRAM
from .memory_map import placement

__all__ = ["mvtu_luts", "mvtu_terms", "rom_luts", "rom_in_logic", "rom_words", "rom_columns",
           "threshold_tables",
           "argmax_bits", "argmax_luts", "MVTU_LUT", "LUT4_PER_XNOR_BIT", "TERMS"]

#: LUT4 per weight of a fully parallel layer (constant weights: popcount trees), per family.
LUT4_PER_XNOR_BIT = {"ice40": 0.926, "ecp5": 1.742}

#: The terms of :func:`mvtu_terms`, in the order of :data:`MVTU_LUT`'s coefficients.
TERMS = ("xnor", "ternary", "accumulate", "compare", "threshold_select", "input_register",
         "whole_input", "input_memory", "collect", "rom", "unit")

#: LUT4 per unit of each term of :func:`mvtu_terms`, per family (fitted; module docstring).
MVTU_LUT = {
    "ice40": {"xnor": 2.92, "ternary": 0.771, "accumulate": 0.995, "compare": 0.0,
              "threshold_select": 0.876, "input_register": 1.141, "whole_input": 0.823,
              "input_memory": 0.657, "collect": 1.629, "rom": 0.559, "unit": 50.225},
    "ecp5": {"xnor": 3.045, "ternary": 0.78, "accumulate": 0.11, "compare": 1.061,
             "threshold_select": 2.045, "input_register": 2.281, "whole_input": 0.935,
             "input_memory": 0.0, "collect": 1.363, "rom": 1.215, "unit": 111.66},
}

#: The argmax and the synthesis wrapper: LUT4 per class and popcount bit, and a constant.
_ARGMAX_LUT = {"ice40": (1.071, 249.354), "ecp5": (2.674, 42.25)}

# ROMs Yosys keeps in logic on iCE40: past 16 words a LUT4 per bit no longer holds a word's
# bit; measured on random 1 to 64 bit ROMs of 20 to 320 words (0.15 words - 0.6 per bit
# within 20 %).
_ICE40_ROM_PER_WORD = 0.15
_ICE40_ROM_OFFSET = 0.6


def _bits(value):
    return max(1, int(value).bit_length())


def rom_luts(family, width, words):
    """LUT4 of a ``width x words`` ROM kept in logic (its read register aside).

    Up to 4 words Yosys folds the ROM into the read register's set and reset (``(words - 1)
    / 16`` per bit), and up to 16 words a LUT4 per bit holds it; past that ECP5 takes one per
    16 words of the next power of two (its ``PFUMX`` and ``L6MUX21`` join them for free), iCE40
    ``0.15 words - 0.6`` per bit (measured on ROMs alone: ``bench/README.md``).
    """
    if words <= 1:
        return 0.0
    if words <= 4:
        return width * (words - 1) / 16
    if words <= 16:
        return float(width)
    if family == "ecp5":
        return float(width * (1 << (words - 1).bit_length()) // 16)
    return width * (_ICE40_ROM_PER_WORD * words - _ICE40_ROM_OFFSET)


def rom_in_logic(family, width, words):
    """Whether Yosys keeps a ``width x words`` ROM in logic (:mod:`.memory_map`); a one-word
    ROM is constants, not a ROM."""
    return words > 1 and placement(family, width, words, rom=True).kind == "logic"


def rom_columns(layer, fold):
    """Distinct columns of a layer's weight ROM (sign and mask bits, as
    :func:`bnnflow.hw.weight_rom.rom_bits` lays the words out) that are not constant: the
    flip-flops Yosys keeps of a register loaded from the ROM when the ROM is in logic. It
    merges register bits with the same input and drops constant ones, so a shallow, wide ROM
    keeps few (6 words of 384 random bits: 64 patterns, Yosys kept 61 of a 384-bit register;
    measured on 13 ROMs of 2 to 18 words)."""
    from ..hw.weight_rom import rom_bits

    pe, simd = fold.pe, fold.simd
    planes = [layer.weights] + ([layer.mask] if getattr(layer, "mask", None) is not None
                                else [])
    words, width = rom_words(layer, fold), pe * simd * len(planes)
    if words > 60 or (width > 256 and (1 << words) >= 4 * width):
        # A wide ROM with room for many more patterns than columns: nearly all differ (12 x
        # 192 random bits: 187 distinct), not worth reading a large layer's weights at every
        # folding a search tries.
        return width
    shifts = np.arange(words, dtype=np.uint64)[:, None]
    codes = [(rom_bits(plane, pe, simd).astype(np.uint64) << shifts).sum(axis=0)
             for plane in planes]
    distinct = np.unique(np.concatenate(codes))
    return int(np.count_nonzero((distinct != 0) & (distinct != (1 << words) - 1)))


def rom_words(layer, fold):
    """Words of a layer's weight ROM: ``ceil(N/PE) * ceil(K/SIMD)`` (walked once per output
    pixel); 1 for a fully parallel layer (constant weights)."""
    return -(-layer.neurons // fold.pe) * -(-layer.fan_in // fold.simd)


def threshold_tables(layer, fold):
    """``(width, depth)`` of the threshold tables of one MVTU that Yosys makes ROMs of (only
    with several neuron folds): per PE of a hidden layer with binary activations over several
    synapse folds the ``-t`` of ``bits(K + 1) + 1`` bits, else per PE and threshold the values
    over the folds, ``bits`` of that table's largest (Yosys trims the bits that are 0 in every
    word: a 2-bit 256-128-128-10 at II 1024 on iCE40 used 18 block RAMs, where the widest
    table's width gave 24)."""
    nf, sf = -(-layer.neurons // fold.pe), -(-layer.fan_in // fold.simd)
    if layer.is_output or nf == 1:
        return []
    if layer.activation_bits == 1 and sf > 1:
        max_count = layer.fan_in * ((1 << layer.in_bits) - 1)
        return [(_bits(max_count + 1) + 1, nf)] * fold.pe
    t = np.zeros((nf * fold.pe, layer.thresholds.shape[1]), dtype=np.int64)
    t[:layer.neurons] = layer.thresholds
    return [(_bits(int(t[p::fold.pe, i].max())), nf)
            for p in range(fold.pe) for i in range(t.shape[1])]


def mvtu_terms(layer, fold, in_chunk, out_chunks, family):
    """The terms of one folded MVTU (a dict over :data:`TERMS`, and ``lutram``: the
    ``TRELLIS_COMB`` cells of an input memory Yosys puts in ECP5 LUT RAM).

    ``in_chunk`` is the width of its input transfers (``K * n`` when it takes whole vectors),
    ``out_chunks`` whether it sends each neuron fold as it is done.
    """
    pe, simd, b, wb = fold.pe, fold.simd, layer.in_bits, layer.weight_bits
    k, n = layer.fan_in, layer.neurons
    sf, nf = -(-k // simd), -(-n // pe)
    levels = 0 if layer.is_output else layer.thresholds.shape[1]
    acc = _bits(k * ((1 << b) - 1))
    terms = dict.fromkeys(TERMS, 0.0)
    terms["lutram"] = 0.0
    terms["xnor"] = pe * simd * b
    terms["ternary"] = pe * simd * b * (wb - 1)
    terms["accumulate"] = pe * acc if sf > 1 else 0
    terms["compare"] = pe * levels * acc
    # The threshold tables Yosys keeps in logic (block RAMs are counted apart).
    terms["threshold_select"] = sum(rom_luts(family, w, d) for w, d in threshold_tables(layer, fold)
                                    if rom_in_logic(family, w, d))
    if sf == 1:
        terms["input_register"] = k * b
    else:
        depth = 2 << (sf - 1).bit_length()
        place = placement(family, simd * b, depth)
        if in_chunk == k * b:
            terms["whole_input"] = k * b
        if place.kind == "logic":
            terms["input_memory"] = simd * b * depth
        elif place.kind == "lutram":
            terms["lutram"] = ECP5_COMB_PER_LUTRAM * place.cells
    if nf > 1 and not out_chunks:
        terms["collect"] = n * max(levels, 1)
    if rom_in_logic(family, pe * simd * wb, sf * nf):
        terms["rom"] = rom_luts(family, pe * simd * wb, sf * nf)
    terms["unit"] = 1
    return terms


def mvtu_luts(layer, fold, in_chunk, out_chunks, family):
    """LUT4 (the logic measure) of one MVTU: :data:`LUT4_PER_XNOR_BIT` per weight when it is
    fully parallel (one ROM word: constant weights), else :data:`MVTU_LUT` over
    :func:`mvtu_terms`."""
    if rom_words(layer, fold) == 1:
        return LUT4_PER_XNOR_BIT[family] * layer.fan_in * layer.neurons * layer.in_bits
    terms = mvtu_terms(layer, fold, in_chunk, out_chunks, family)
    coef = MVTU_LUT[family]
    return terms["lutram"] + sum(coef[t] * terms[t] for t in TERMS)


def argmax_bits(layer):
    """Classes times popcount bits of the output ``layer``: what the argmax compares."""
    return layer.neurons * _bits(layer.fan_in * ((1 << layer.in_bits) - 1))


def argmax_luts(layer, family):
    """LUT4 of the argmax over the output ``layer``'s popcounts and the synthesis wrapper
    around the network (fitted with :data:`MVTU_LUT`)."""
    per_bit, base = _ARGMAX_LUT[family]
    return per_bit * argmax_bits(layer) + base
