"""Out-of-context synthesis of a network with Yosys and nextpnr, and its resource report.

:func:`synthesize` wraps :class:`~bnnflow.hw.top.BnnTop` in the serial I/O fixture of
:mod:`bnnflow.boards.wrapper`, writes it as RTLIL, then runs

1. ``yosys``: ``read_rtlil; synth_<family> -top bnnflow_synth -json netlist.json;
   stat -json`` (cell counts: LUT4, flip-flops, carry cells, block RAM, SPRAM),
2. a fit check of those counts against the target (:class:`DoesNotFit` with a folding that
   would fit, before spending time in place and route),
3. ``nextpnr-<family> --timing-allow-fail --report pnr.json`` (utilization and Fmax; a missed
   clock constraint is reported, not an error).

Report keys: ``target``, ``device_args``, ``lut4``, ``ff``, ``carry``, ``bram``, ``spram``,
``cells`` (every cell type), ``utilization`` (percent: ``logic``, ``ff``, ``bram``, ``io``),
``capacity``, ``fmax_mhz``, ``freq_constraint_mhz``, ``timing_met``, ``ii``,
``images_per_second`` (``fmax / ii``), ``latency``, ``latency_us``, ``folding``, ``pipeline``,
``model_checksum``, ``wrapper``, ``step_seconds`` (``generate``, ``yosys``, ``nextpnr``),
``tools``.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import BnnflowError
from ..fileio import log_tail, write_text_atomic
from .targets import get_target, rom_blocks
from .tools import find_tool, run_step

__all__ = ["synthesize", "DoesNotFit", "estimate_brams", "estimate_brams_used",
           "estimate_rom_luts",
           "rom_does_not_fit", "suggest_ii", "fit_folding", "estimate_ffs", "estimate_luts",
           "estimate_logic", "logic_need", "router_args", "clock_pin_constraint", "CLOCK_LPF",
           "ECP5_ROUTABLE_BRAMS", "routable_brams",
           "ECP5_ROUTER2_ABOVE", "cell_counts", "SYNTH_TOP", "timing_line",
           "LUT4_PER_XNOR_BIT", "UNPACKED_FF_SHARE", "ICE40_FF_SHARE_LIMIT", "UNPLACEABLE",
           "PLACE_ATTEMPTS", "ROM_REGISTER"]

SYNTH_TOP = "bnnflow_synth"

# Cell types counted in each report field, per family.
_CELLS = {
    "ice40": {"lut4": ("SB_LUT4",), "carry": ("SB_CARRY",), "bram": ("SB_RAM40_4K",),
              "spram": ("SB_SPRAM256KA",), "ff_prefix": "SB_DFF"},
    "ecp5": {"lut4": ("LUT4",), "carry": ("CCU2C",), "bram": ("DP16KD",), "spram": (),
             "ff_prefix": "TRELLIS_FF"},
}
_LOGIC_CELL = {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB"}
_FF_CELL = {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_FF"}
_BRAM_CELL = {"ice40": "ICESTORM_RAM", "ecp5": "DP16KD"}
_IO_CELL = {"ice40": "SB_IO", "ecp5": "TRELLIS_IO"}


#: LUT4 per XNOR bit computed per cycle, from a first prototype's fully parallel 64x64 layer
#: (3311 LUT4 on iCE40, 7928 on ECP5, for 4096 bits): the logic of a fully parallel layer.
LUT4_PER_XNOR_BIT = {"ice40": 3311 / 4096, "ecp5": 7928 / 4096}

#: Share of the flip-flops that take a logic cell of their own on iCE40 (a cell holds one LUT4
#: and one DFF; a DFF shares it only with the LUT that drives it, so buffers, shift registers
#: and registers loaded from registers do not). Measured with nextpnr 0.11.1 on the UP5K:
#: 0.62-0.70 for 64-64-64-64-10 folded at II 32/64 ((logic cells - LUT4) / FF), 0.72 for
#: 784-64-64-64-10 at II 512 (3208 of 4456 DFFs alone in their cell).
UNPACKED_FF_SHARE = 0.72

#: Largest share of an iCE40's logic cells that flip-flops may take in a folding that
#: :func:`suggest_ii` proposes. Measured: placed at 35-44 % (64-64-64-64-10 on the UP5K, 85-94 %
#: of the logic cells); not placeable at 59 % (784-64-64-64-10 at II 256 on the HX8K, 84 % of
#: the logic cells: flip-flops with distinct enables cannot share a logic tile). Then with the
#: keep popcount and the registered argmax/sequencer (192-64-64-64-10, thermometer-coded digits,
#: pipeline 2, UP5K): II 128 did not place (2505 FF = 47 % measured, 43 % estimated, 70 % of the
#: logic cells), II 256 placed (2416 FF, 41 % estimated, 67 % of the logic cells). The limit
#: applies to the estimate. Five designs: a rough boundary.
ICE40_FF_SHARE_LIMIT = 0.42

#: Placer seeds tried (``seed``, ``seed + 1``, ...) before a design that nextpnr cannot place
#: is reported as not fitting.
PLACE_ATTEMPTS = 3

#: nextpnr log lines that mean the design did not fit.
UNPLACEABLE = ("Unable to place", "no BELs remaining", "Unable to find legal placement",
               "too many")

# Folded-layer LUT4 model, fitted to Yosys 0.70 synth_ice40 counts inside the synthesis
# wrapper: XNOR, popcount and accumulator per XNOR bit computed per cycle (the XNOR is a real
# gate once weights come from a ROM), input buffer and SIMD select per input bit, threshold
# select and output collection per neuron of a layer with neuron folds. Measured against
# 784-64-64-64-10 at II 128/256/512, 64-64-64-64-10 at II 8/32/64 and 256-128-10 at II 16:
# between 14 % under and 19 % over (the README lists them).
_FOLDED_LUT_PER_XNOR_BIT = 2.0
_FOLDED_LUT_PER_INPUT = 1.04
_FOLDED_LUT_PER_NEURON = 8.5
# ECP5 LUT4 (with two per carry cell) over the iCE40 model, from one folded design
# (64-64-64-64-10 at II 8: 7723 LUT4 + 230 CCU2C on the ECP5-25K).
_FOLDED_LUT_SCALE = {"ice40": 1.0, "ecp5": 1.5}
# Yosys put ROMs of 128 words or more in block RAM and shallower ones in LUTs (iCE40,
# measured). ECP5, measured: 32-word ROMs in LUTs (192-64-64-64-10 at II 32, 0 DP16KD), the
# 64- and 128-word ROMs of 784-256-256-256-10 at II 64 and 128 in block RAM (146 and 75
# DP16KD). Yosys weighs width too: 64-word ROMs of 40 bits (sfc's last layer) and 64 bits
# (64-64-10 at 1x64, on the 25k) stayed in LUTs, which this depth rule counts as block RAM (a few
# hundred LUT4 missing from the estimate, block RAM use over-estimated: the safe side).
_ROM_BRAM_MIN_DEPTH = {"ice40": 128, "ecp5": 64}

#: ``rom_register`` of :class:`~bnnflow.hw.mvtu.MVTU` per family: where the weight register
#: after the ROM pays. ECP5 (192-64-64-64-10, pipeline 2, ecp5-85k): 90.6 -> 127.0 MHz at II
#: 256 (block RAM ROMs), 112.1 -> 126.7 MHz at II 32 (LUT ROMs). iCE40 UP5K at II 256: 47.5 ->
#: 46.2 MHz (the critical path is elsewhere) for 87 more flip-flops, which the flip-flop limit
#: of :func:`suggest_ii` cannot spare (and with the fused threshold it found no legal placement
#: on three seeds; hw/README.md). ``synthesize`` and ``build`` should pass
#: ``rom_register=ROM_REGISTER[family]`` to ``BnnTop`` (its default is ``False``).
ROM_REGISTER = {"ice40": False, "ecp5": True}


class DoesNotFit(BnnflowError):
    """The design needs more logic or block RAM than the target has."""


def cell_counts(family, by_type):
    """Report fields ``lut4, ff, carry, bram, spram`` from Yosys' cell counts by type."""
    spec = _CELLS[family]
    counts = {key: sum(by_type.get(t, 0) for t in spec[key])
              for key in ("lut4", "carry", "bram", "spram")}
    counts["ff"] = sum(n for t, n in by_type.items() if t.startswith(spec["ff_prefix"]))
    return counts


def _roms(model, folding):
    """``(width, depth)`` of the weight ROM of every folded layer (cycles > 1)."""
    from ..hw.folding import layer_cycles

    for layer, fold in zip(model.layers, folding, strict=True):
        cycles = layer_cycles(layer.in_width, layer.out_width, fold)
        if cycles > 1:
            yield fold.pe * fold.simd, cycles


def estimate_brams(model, folding, family):
    """Block RAMs the weight ROMs of the folded layers (cycles > 1) need at best."""
    return sum(rom_blocks(family, width, depth) for width, depth in _roms(model, folding))


def estimate_brams_used(model, folding, family):
    """Block RAMs of the ROMs that Yosys is expected to put in block RAM (see
    :data:`_ROM_BRAM_MIN_DEPTH`); shallower ROMs go to LUTs. :func:`estimate_brams` counts
    every folded layer's ROM (the block RAM it would need)."""
    return sum(rom_blocks(family, width, depth) for width, depth in _roms(model, folding)
               if not _rom_in_luts(family, depth))


def estimate_rom_luts(model, folding):
    """LUT4 the weight ROMs would take in logic instead: ``width * ceil(depth / 16)``."""
    return sum(width * -(-depth // 16) for width, depth in _roms(model, folding))


def rom_does_not_fit(model, folding, tgt):
    """True when the ROMs fit neither the block RAMs nor (by estimate) the LUTs."""
    return (estimate_brams(model, folding, tgt.family) > tgt.bram
            and estimate_rom_luts(model, folding) > tgt.lut4)


def _xnor_bits(folding):
    return sum(f.pe * f.simd for f in folding)


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


def _rom_in_luts(family, cycles):
    return 1 < cycles < _ROM_BRAM_MIN_DEPTH[family]


def estimate_ffs(model, folding, pipeline=0, family="ice40", *, rom_register=None):
    """Flip-flops of ``model`` folded as ``folding`` inside the synthesis wrapper.

    Counted from the structure :class:`~bnnflow.hw.mvtu.MVTU` builds, per layer: the two
    input buffers (``2 K``), sequencer counters, the ROM-stage input delay (``SIMD``), the
    popcount pipeline registers, accumulators (``PE * bits(K)`` when ``SF > 1``, binary hidden
    layers ``PE * (bits(K + 1) + 1)``: they accumulate popcount - threshold), neuron-fold
    collection and output registers (``N * lane``); plus the argmax output register and the
    wrapper (``2 K0 + W_out + 2``: its shift register and the network's input register). A
    weight ROM that Yosys puts in LUTs (fewer than 128 words on iCE40) adds its ``PE * SIMD``
    read-data register; ``rom_register`` (:class:`~bnnflow.hw.mvtu.MVTU`; ``None``: the
    family's :data:`ROM_REGISTER`) adds the ``PE * SIMD`` weight register and its priming flag
    to every ROM, and a ROM depth that is not a power of two a wrap flag. Within 2 % of
    Yosys' count on the pipeline-0 designs measured (see the README).
    """
    from ..hw.folding import layer_cycles

    if rom_register is None:
        rom_register = ROM_REGISTER[family]
    total = 0
    for layer, fold in zip(model.layers, folding, strict=True):
        k, n = layer.in_width, layer.out_width
        nf, sf = -(-n // fold.pe), -(-k // fold.simd)
        cycles = layer_cycles(k, n, fold)
        lane = (_bits_for(k) if layer.thresholds is None
                else _bits_for(layer.thresholds.shape[1]))
        ctrl = 4 + _bits_for(max(nf - 1, 1))
        ff = 2 * k + 3 + _bits_for(sf) + _bits_for(nf) + _bits_for(cycles)
        if cycles > 1:
            ff += fold.simd + ctrl
            if _rom_in_luts(family, cycles):
                ff += fold.pe * fold.simd
            if rom_register:
                ff += fold.pe * fold.simd + 1
            if cycles & (cycles - 1):
                ff += 1
        ff += pipeline * ctrl + fold.pe * _popcount_ffs(fold.simd, pipeline)
        if sf > 1:
            # Binary hidden layers accumulate popcount - threshold (signed, one bit wider).
            fused = layer.thresholds is not None and layer.thresholds.shape[1] == 1
            ff += fold.pe * (_bits_for(k + 1) + 1 if fused else _bits_for(k))
        ff += (nf - 1) * fold.pe * lane + n * lane
        total += ff
    last = model.layers[-1]
    w_out = _bits_for(last.out_width - 1) + last.out_width * _bits_for(last.in_width)
    return total + (w_out + 1) + (2 * model.input.width + w_out + 2)


def estimate_luts(model, folding, family="ice40"):
    """LUT4 of ``model`` folded as ``folding`` (a calibrated estimate, iCE40 LUT4 units).

    Fully parallel layers: :data:`LUT4_PER_XNOR_BIT` per weight (constant weights make the
    XNOR free). Folded layers: 2 LUT4 per XNOR bit computed per cycle, 1.04 per input bit
    (buffers and the SIMD select), 8.5 per neuron when neurons are folded (threshold select,
    collection), plus :func:`estimate_rom_luts` for ROMs Yosys keeps in LUTs. Fitted to Yosys
    counts of three networks at seven foldings (from 14 % under to 19 % over, see the
    README); on ECP5 folded layers count 1.5
    times that (one measured design) and fully parallel ones use the ECP5 figure of
    :data:`LUT4_PER_XNOR_BIT`.
    """
    from ..hw.folding import layer_cycles

    total = 0.0
    for layer, fold in zip(model.layers, folding, strict=True):
        k, n = layer.in_width, layer.out_width
        cycles = layer_cycles(k, n, fold)
        if cycles == 1:
            total += LUT4_PER_XNOR_BIT[family] * k * n
            continue
        folded = _FOLDED_LUT_PER_XNOR_BIT * fold.pe * fold.simd + _FOLDED_LUT_PER_INPUT * k
        if n > fold.pe:
            folded += _FOLDED_LUT_PER_NEURON * n
        if _rom_in_luts(family, cycles):
            folded += fold.pe * fold.simd * -(-cycles // 16)
        total += folded * _FOLDED_LUT_SCALE[family]
    return round(total)


def logic_need(family, lut4, ff, carry=0):
    """Logic cells a design with these counts needs, to compare with ``Target.lut4``.

    iCE40: ``LUT4 + UNPACKED_FF_SHARE * FF`` (one LUT4 and one DFF per cell). ECP5: the larger
    of LUT4 (with two per ``CCU2C`` carry cell) and flip-flops (a slice holds two of each).
    """
    if family == "ice40":
        return round(lut4 + UNPACKED_FF_SHARE * ff)
    return max(lut4 + 2 * carry, ff)


def estimate_logic(model, folding, family, pipeline=0):
    """Estimated logic cells (:func:`logic_need` of :func:`estimate_luts` and
    :func:`estimate_ffs`)."""
    return logic_need(family, estimate_luts(model, folding, family),
                      estimate_ffs(model, folding, pipeline, family))


#: Block RAMs an ECP5 design may read every cycle and still be expected to route: every ROM
#: word is read each cycle, so the RAM outputs (36 bits each) all feed the XNOR/popcount logic
#: at once. Measured with 784-256-256-256-10, pipeline 2, on the 85k: 75 DP16KD (II 128, 2612
#: weight bits per cycle) routed in 18 minutes with router1; 146 (II 64) routed once, in an
#: earlier version without the weight-ROM register (48.9 MHz), and not since: with the clock
#: on its pin, router2 still had 12,323 overused wires at iteration 6, 27 minutes into
#: nextpnr; other runs hit a 15- or 20-minute limit (one of them without the ROM register)
#: or stopped routing the clock from an ordinary pad.
#: The share of the device is not what decides: 39 of the 25k's 56 (70 %) routed in 7 minutes.
ECP5_ROUTABLE_BRAMS = 100


def routable_brams(family, available):
    """Block RAMs :func:`suggest_ii` and :func:`fit_folding` let a design use on ``family``."""
    if family == "ecp5":
        return min(available, ECP5_ROUTABLE_BRAMS)
    return available


def suggest_ii(model, folding, needed=None, available=None, brams_available=None, family=None,
               margin=0.9, *, pipeline=0, failed=False):
    """A target II (a power of two) whose ``auto`` folding should fit, or None.

    Logic is predicted with :func:`estimate_logic` (LUT4 and flip-flops; on iCE40 the
    flip-flops must also stay within :data:`ICE40_FF_SHARE_LIMIT` of ``available``). When
    ``needed``
    (the logic cells measured or estimated for ``folding``, as :func:`logic_need` counts
    them) is given, predictions are scaled by ``needed / estimate_logic(folding)``, so a
    measurement corrects the model; the prediction must be at most ``margin * available``.
    When ``brams_available`` is given, the ROMs of the folded layers must also fit the block
    RAMs (:func:`estimate_brams`), and on ECP5 the ROMs deep enough for block RAM may use at
    most :data:`ECP5_ROUTABLE_BRAMS` of them (:func:`estimate_brams_used`,
    :func:`routable_brams`). ``needed=None`` checks block RAM only. ``failed=True``
    (``folding`` was just measured not to fit) only accepts foldings with less predicted logic
    than ``folding``, so the answer never repeats the folding that failed. The answer is the
    smallest power of two that passes (block RAM use is not monotonic in II: very narrow ROMs
    waste block RAM width).
    """
    from ..hw.folding import auto_fold

    family = family or "ice40"
    current = estimate_logic(model, folding, family, pipeline)
    scale = needed / current if needed is not None else 1.0
    longest = max(layer.in_width * layer.out_width for layer in model.layers)

    def fits(ii):
        fold, _ = auto_fold(model, ii)
        if needed is not None:
            logic = estimate_logic(model, fold, family, pipeline)
            if logic * scale > margin * available or (failed and logic >= current):
                return False
            if (family == "ice40" and estimate_ffs(model, fold, pipeline, family)
                    > ICE40_FF_SHARE_LIMIT * available):
                return False
        return brams_available is None or (
            estimate_brams(model, fold, family) <= brams_available
            and estimate_brams_used(model, fold, family) <= routable_brams(family,
                                                                          brams_available))

    ii = 1
    while True:
        if fits(ii):
            return ii
        if ii >= longest:
            return None
        ii *= 2


#: Estimated logic (:func:`estimate_logic`) over the device's logic cells above which a
#: folding is refused before any tool runs.
_SURE_ESTIMATE = 2.0

#: Measured logic need (:func:`logic_need`) above which synthesis stops before nextpnr: the
#: estimate's share of lone flip-flops is uncertain by about 10 %.
_SURE_OVERFLOW = 1.1


def _placer_need(log_text, family):
    """Logic cells nextpnr wanted, from its utilization lines (``ICESTORM_LC: 6199/ 5280``)."""
    import re

    cell = _LOGIC_CELL[family]
    found = re.findall(rf"{cell}:\s*(\d+)/\s*(\d+)", log_text)
    return int(found[-1][0]) if found else None


def _fit_hint(model, folding, needed, available, bram_avail, family, pipeline=0, failed=True):
    ii = suggest_ii(model, folding, needed, available, bram_avail, family, pipeline=pipeline,
                    failed=failed)
    if ii is None:
        return ("no folding of this network is expected to fit; "
                + _larger_target(model, available, family, pipeline))
    return f"try --fold auto --ii {ii} (estimated to fit)"


def _larger_target(model, available, family, pipeline=0):
    """Advice naming the smallest larger target that :func:`fit_folding` expects to fit."""
    from .targets import TARGETS

    for tgt in sorted(TARGETS.values(), key=lambda t: t.lut4):
        if tgt.lut4 <= available:
            continue
        try:
            _, ii = fit_folding(model, tgt.name, pipeline=pipeline)
        except DoesNotFit:
            continue
        return f"choose a larger target ({tgt.name} with --fold auto --ii {ii} is expected to fit)"
    return "no supported target is expected to fit it"


def _rom_hint(model, folding, tgt):
    """Fit hint when only the ROM estimate exists: logic from :func:`estimate_logic`."""
    needed = estimate_logic(model, folding, tgt.family)
    return _fit_hint(model, folding, needed, tgt.lut4, tgt.bram, tgt.family, failed=False)


def fit_folding(model, target, *, pipeline=0):
    """A folding expected to fit ``target``: ``(folding, ii)``.

    Fully parallel when the estimate (:func:`estimate_logic`: LUT4 and flip-flops) fits 90 %
    of the device's logic cells, otherwise ``auto`` at the smallest power-of-two II predicted
    to fit (see :func:`suggest_ii`). An estimate, not a guarantee: :func:`synthesize` checks
    the real counts. Raises :class:`DoesNotFit` when no folding is expected to fit.
    """
    from ..hw.folding import auto_fold, fully_parallel

    tgt = get_target(target)
    full = fully_parallel(model)
    ii = suggest_ii(model, full, estimate_logic(model, full, tgt.family, pipeline), tgt.lut4,
                    tgt.bram, tgt.family, pipeline=pipeline)
    if ii is None:
        raise DoesNotFit(f"no folding of this network is expected to fit the {tgt.name}")
    return auto_fold(model, ii)


def checked_folding(model, folding, ii, tgt, device=None, pipeline=0):
    """Resolve a folding for ``tgt`` and check that it can fit: ``(fold, text)``.

    Refused before any tool runs: weight ROMs that fit neither the block RAMs nor the logic,
    and designs estimated (:func:`estimate_logic`) at more than twice the device's logic
    cells (the estimates are within about 20 %; Yosys alone takes minutes on such designs).

    Raises
    ------
    BnnflowError
        An impossible folding (the message of :func:`bnnflow.hw.folding.resolve_folding`).
    DoesNotFit
        Weights that fit neither the block RAMs nor, by estimate, the logic of ``device``
        (default: the target's name), or logic far over the device, with a folding that
        would fit.
    """
    from ..hw.folding import resolve_folding

    try:
        fold = resolve_folding(model, folding, ii)
    except ValueError as e:
        raise BnnflowError(str(e)) from None
    fold_text = ",".join(str(f) for f in fold)
    if rom_does_not_fit(model, fold, tgt):
        rom_need = estimate_brams(model, fold, tgt.family)
        raise DoesNotFit(
            f"the weight ROMs of folding {fold_text} need at least {rom_need} block RAMs, the "
            f"{device or tgt.name} has {tgt.bram} ({rom_need - tgt.bram} too many), and about "
            f"{estimate_rom_luts(model, fold)} LUT4 in logic; {_rom_hint(model, fold, tgt)}")
    est = estimate_logic(model, fold, tgt.family, pipeline)
    if est > _SURE_ESTIMATE * tgt.lut4:
        raise DoesNotFit(
            f"folding {fold_text} is estimated at {est} logic cells (LUT4 and flip-flops), the "
            f"{device or tgt.name} has {tgt.lut4} ({est / tgt.lut4:.0%}); "
            f"{_fit_hint(model, fold, est, tgt.lut4, tgt.bram, tgt.family, pipeline, False)}")
    return fold, fold_text


def timing_line(report):
    """One line on the clock: met, or missed and by how much."""
    fmax, want = report["fmax_mhz"], report["freq_constraint_mhz"]
    if fmax is None:
        return "timing: no clock found in the nextpnr report"
    if report["timing_met"]:
        return f"timing: Fmax {fmax:.1f} MHz meets the {want:g} MHz constraint"
    return (f"timing: Fmax {fmax:.1f} MHz misses the {want:g} MHz constraint "
            f"(placed anyway with --timing-allow-fail; figures below use {fmax:.1f} MHz)")


def _make_build_dir(out_dir):
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix="bnnflow-synth-"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".synth-", dir=out_dir))


#: ECP5 designs above this many logic cells (LUT4 + 2 per CCU2C, Yosys' count) are routed with
#: nextpnr's router2: router1 (the default) had 60,000 of 99,000 arcs left after 13 minutes on
#: the sfc network at II 64 (about 59,000 cells) and stalled on the fully parallel tfc (about
#: 41,000), where router2 routed the sfc in 6 minutes; on small designs router1 gives the
#: better Fmax (default tfc at II 256, about 3,500 cells: 133 against 107 MHz).
ECP5_ROUTER2_ABOVE = 20_000


#: Constraint file that locks ``clk`` to :attr:`Target.clock_pin` (kept in ``out_dir``).
CLOCK_LPF = "clock.lpf"


def clock_pin_constraint(tgt):
    """``(text, nextpnr options)`` locking the ``clk`` port to ``tgt.clock_pin``, or ``None``.

    ECP5 only (an LPF file, :data:`CLOCK_LPF`; the other pins stay unconstrained).
    """
    if tgt.clock_pin is None:
        return None
    return (f'LOCATE COMP "clk" SITE "{tgt.clock_pin}";\n',
            ["--lpf", CLOCK_LPF, "--lpf-allow-unconstrained"])


def router_args(family, logic):
    """Extra nextpnr options for a design of ``logic`` cells (see :data:`ECP5_ROUTER2_ABOVE`)."""
    if family == "ecp5" and logic > ECP5_ROUTER2_ABOVE:
        return ["--router", "router2"]
    return []


def synthesize(model, target="ice40-up5k", folding=None, *, ii=None, pipeline=0, out_dir=None,
               freq_mhz=None, seed=1, progress=None, pnr_timeout=None):
    """Synthesize ``model`` out of context for ``target``; return the report dict.

    Parameters
    ----------
    model : BnnModel
    target : str
        One of :data:`bnnflow.boards.targets.TARGETS`.
    folding : None, "auto", str or sequence
        As :func:`bnnflow.hw.folding.resolve_folding` (with ``ii`` for ``"auto"``).
    ii : int or None
        Target II for ``folding="auto"``.
    pipeline : int
        Popcount pipeline stages.
    out_dir : path or None
        Where ``report.json``, the tool logs (``yosys.log``, ``nextpnr.log``) and the nextpnr
        report (``nextpnr-report.json``) go. Tool steps run in a temporary directory; the
        files move into ``out_dir`` only when every step succeeded. ``None``: nothing is kept.
    freq_mhz : float or None
        Clock constraint for nextpnr (default: the target's).
    seed : int
        nextpnr placer seed (same seed, same placement); a failed placement is retried with
        the next :data:`PLACE_ATTEMPTS` - 1 seeds, and the report says which one placed
        (``nextpnr_seed``).
    progress : callable or None
        Called with a one-line message before each step.
    pnr_timeout : float or None
        Seconds after which a nextpnr run is stopped (a :class:`ToolError` naming the limit);
        ``None``: no limit. nextpnr's router can stall on a congested design for a long time.

    Raises
    ------
    BnnflowError
        Unknown target, bad folding (``ValueError`` from the folding is turned into this).
    DoesNotFit
        More LUT4 or block RAM than the target has (says by how much, and which ``--ii``
        should fit).
    ToolError
        A tool is missing or fails.
    """
    import time

    from amaranth.back import rtlil

    from ..hw.top import BnnTop
    from .wrapper import WRAPPER_NOTE, SynthWrapper

    tgt = get_target(target)
    say = progress or (lambda msg: None)
    fold, fold_text = checked_folding(model, folding, ii, tgt, pipeline=pipeline)
    yosys = find_tool("yosys")
    nextpnr = find_tool(f"nextpnr-{tgt.family}")

    try:
        bnn = BnnTop(model, fold, pipeline, rom_register=ROM_REGISTER[tgt.family])
    except ValueError as e:
        raise BnnflowError(str(e)) from None

    steps = {}
    build = _make_build_dir(out_dir)
    # Logs of a failed step outlive the temporary build directory.
    keep = out_dir if out_dir is not None else Path(tempfile.gettempdir()) / "bnnflow-logs"
    try:
        say(f"generate RTLIL ({fold_text}, II {bnn.ii})")
        t = time.perf_counter()
        text = rtlil.convert(SynthWrapper(bnn), name=SYNTH_TOP)
        (build / "design.il").write_text(text, encoding="utf-8")
        steps["generate"] = round(time.perf_counter() - t, 3)

        say(f"yosys synth_{tgt.family}")
        (build / "synth.ys").write_text(
            "read_rtlil design.il\n"
            f"synth_{tgt.family} -top {SYNTH_TOP} -json netlist.json\n"
            "tee -q -o stat.json stat -json\n", encoding="utf-8")
        steps["yosys"] = round(run_step("yosys", [*yosys, "synth.ys"], cwd=build,
                                        log=build / "yosys.log", keep_log_dir=keep), 3)
        stat = json.loads((build / "stat.json").read_text(encoding="utf-8"))
        by_type = {t: n for t, n in stat["design"]["num_cells_by_type"].items()
                   if not t.startswith("$scopeinfo")}
        counts = cell_counts(tgt.family, by_type)

        logic = counts["lut4"] + (2 * counts["carry"] if tgt.family == "ecp5" else 0)
        need = logic_need(tgt.family, logic, counts["ff"], 0)
        hint = _fit_hint(model, fold, need, tgt.lut4, tgt.bram, tgt.family, pipeline)
        if logic > tgt.lut4:
            raise DoesNotFit(
                f"the design needs {logic} LUT4 (folding {fold_text}), the {tgt.name} has "
                f"{tgt.lut4}: {logic - tgt.lut4} too many ({logic / tgt.lut4:.0%} of the "
                f"device); {hint}")
        if need > _SURE_OVERFLOW * tgt.lut4:
            raise DoesNotFit(
                f"the design needs about {need} logic cells ({logic} LUT4 and {counts['ff']} "
                f"flip-flops, most of which cannot share a cell with a LUT; folding "
                f"{fold_text}), the {tgt.name} has {tgt.lut4} ({need / tgt.lut4:.0%} of the "
                f"device); {hint}")
        if counts["bram"] > tgt.bram:
            raise DoesNotFit(
                f"the design needs {counts['bram']} block RAMs (folding {fold_text}), the "
                f"{tgt.name} has {tgt.bram}: {counts['bram'] - tgt.bram} too many; "
                f"{_fit_hint(model, fold, need, tgt.lut4, tgt.bram, tgt.family, pipeline)}")

        if counts["bram"] > routable_brams(tgt.family, tgt.bram):
            say(f"warning: {counts['bram']} block RAMs are read every cycle; ECP5 designs with "
                f"more than {ECP5_ROUTABLE_BRAMS} failed to route in the measurements of "
                f"boards/README.md (consider --pnr-timeout); {hint}")
        freq = float(freq_mhz if freq_mhz is not None else tgt.freq_mhz)
        device_args = [*tgt.nextpnr_args, *router_args(tgt.family, logic)]
        clock = clock_pin_constraint(tgt)
        if clock is not None:
            (build / CLOCK_LPF).write_text(clock[0], encoding="utf-8")
            device_args += clock[1]
        say(f"nextpnr-{tgt.family} {' '.join(device_args)} (constraint {freq:g} MHz)")
        # A design near the placer's limit places with some seeds and not with others (the
        # default digits tfc at II 256 on the UP5K: seed 1 failed, seeds 2 and 3 placed), so
        # a failed placement is retried with the next seeds before the design is declared too
        # big.
        for attempt in range(PLACE_ATTEMPTS):
            try_seed = seed + attempt
            try:
                steps["nextpnr"] = round(run_step(
                    "nextpnr", [*nextpnr, *device_args, "--json", "netlist.json",
                                "--report", "pnr.json", "--timing-allow-fail",
                                "--freq", f"{freq:g}", "--seed", str(try_seed)],
                    cwd=build, log=build / "nextpnr.log", keep_log_dir=keep,
                    timeout=pnr_timeout), 3)
                break
            except BnnflowError:
                tail = log_tail(build / "nextpnr.log", 200)
                if not any(line in tail for line in UNPLACEABLE):
                    raise
                placed = _placer_need(tail, tgt.family) or need
                if attempt + 1 < PLACE_ATTEMPTS:
                    say(f"nextpnr could not place the design with seed {try_seed}; retrying "
                        f"with seed {try_seed + 1}")
                    continue
                raise DoesNotFit(
                    f"nextpnr could not place the design on the {tgt.name} ({placed} logic "
                    f"cells of {tgt.lut4}: {logic} LUT4, {counts['ff']} FF; placer seeds "
                    f"{seed}-{try_seed}); "
                    f"{_fit_hint(model, fold, placed, tgt.lut4, tgt.bram, tgt.family, pipeline)}"
                ) from None
        pnr = json.loads((build / "pnr.json").read_text(encoding="utf-8"))

        report = _report(tgt, pnr, counts, by_type, bnn, fold_text, pipeline, freq, steps,
                         yosys, nextpnr, WRAPPER_NOTE)
        report["nextpnr_seed"] = try_seed
        report["device_args"] = device_args
        if out_dir is not None:
            out_dir = Path(out_dir)
            for src, dst in (("yosys.log", "yosys.log"), ("nextpnr.log", "nextpnr.log"),
                             ("pnr.json", "nextpnr-report.json"), ("stat.json", "yosys-stat.json"),
                             *([(CLOCK_LPF, CLOCK_LPF)] if clock is not None else [])):
                os.replace(build / src, out_dir / dst)
            write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
        return report
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _percent(used, available):
    return round(100.0 * used / available, 2) if available else None


def _report(tgt, pnr, counts, by_type, bnn, fold_text, pipeline, freq, steps, yosys, nextpnr,
            wrapper):
    from ..model.artifact import model_checksum

    util = pnr.get("utilization", {})

    def used(cell):
        return util.get(cell, {}).get("used", 0), util.get(cell, {}).get("available", 0)

    achieved = [c["achieved"] for c in pnr.get("fmax", {}).values() if "achieved" in c]
    fmax = round(min(achieved), 2) if achieved else None
    logic_used, logic_avail = used(_LOGIC_CELL[tgt.family])
    ff_used, ff_avail = used(_FF_CELL[tgt.family])
    if tgt.family == "ice40":
        ff_used = counts["ff"]
    bram_used, bram_avail = used(_BRAM_CELL[tgt.family])
    io_used, io_avail = used(_IO_CELL[tgt.family])
    manifest, _ = bnn.model.manifest()
    return {
        "target": tgt.name,
        "family": tgt.family,
        "device_args": list(tgt.nextpnr_args),
        "lut4": counts["lut4"],
        "ff": counts["ff"],
        "carry": counts["carry"],
        "bram": counts["bram"],
        "spram": counts["spram"],
        "logic_cells": logic_used,
        "cells": by_type,
        "capacity": {"logic_cells": logic_avail or tgt.lut4, "bram": bram_avail or tgt.bram,
                     "spram": tgt.spram, "io": io_avail},
        "utilization": {"logic": _percent(logic_used, logic_avail),
                        "ff": _percent(ff_used, ff_avail),
                        "bram": _percent(bram_used, bram_avail),
                        "io": _percent(io_used, io_avail)},
        "fmax_mhz": fmax,
        "freq_constraint_mhz": freq,
        "timing_met": fmax is not None and fmax >= freq,
        "ii": bnn.ii,
        "images_per_second": round(fmax * 1e6 / bnn.ii, 1) if fmax else None,
        "latency": bnn.latency,
        "latency_us": round(bnn.latency / fmax, 4) if fmax else None,
        "folding": fold_text,
        "pipeline": pipeline,
        "model_checksum": model_checksum(manifest),
        "wrapper": wrapper,
        "step_seconds": steps,
        "tools": {"yosys": " ".join(yosys), "nextpnr": " ".join(nextpnr)},
        "logic_note": ("lut4 counts LUT4 cells from Yosys; on ECP5 each CCU2C carry cell holds "
                       "two more LUT4s (logic_cells is nextpnr's count of placed "
                       f"{_LOGIC_CELL[tgt.family]})"),
    }
