"""Choosing a folding for a target: whether a design is expected to fit, and at which II.

:func:`fit_folding` picks a folding expected to fit a target, :func:`suggest_ii` the smallest
power-of-two II whose ``auto`` folding should fit (scaled by a measurement when there is one),
and :func:`checked_folding` refuses, before any tool runs, a folding that cannot fit.
:class:`DoesNotFit` says by how much and carries a hint of what would fit. The predictions are
those of :mod:`bnnflow.boards.estimate`; the limits here (the flip-flop share, the "sure"
margins) say how far they are trusted.
"""

from ..errors import BnnflowError
from .estimate import (
    estimate_brams,
    estimate_brams_used,
    estimate_ffs,
    estimate_logic,
    estimate_rom_luts,
    routable_brams,
)
from .targets import get_target

__all__ = ["DoesNotFit", "fit_folding", "suggest_ii", "checked_folding", "rom_does_not_fit",
           "ICE40_FF_SHARE_LIMIT"]

#: Largest share of an iCE40's logic cells that flip-flops may take in a folding that
#: :func:`suggest_ii` proposes. Measured: placed at 35-44 % (64-64-64-64-10 on the UP5K, 85-94 %
#: of the logic cells); not placeable at 59 % (784-64-64-64-10 at II 256 on the HX8K, 84 % of
#: the logic cells: flip-flops with distinct enables cannot share a logic tile). Then with the
#: keep popcount and the registered argmax/sequencer (192-64-64-64-10, thermometer-coded digits,
#: pipeline 2, UP5K): II 128 did not place (2505 FF = 47 % measured, 43 % estimated, 70 % of the
#: logic cells), II 256 placed (2416 FF, 41 % estimated, 67 % of the logic cells). The limit
#: applies to the estimate. Five designs: a rough boundary.
ICE40_FF_SHARE_LIMIT = 0.42

#: Estimated logic (:func:`estimate_logic`) over the device's logic cells above which a
#: folding is refused before any tool runs.
_SURE_ESTIMATE = 2.0

#: Measured logic need (:func:`logic_need`) above which synthesis stops before nextpnr: the
#: estimate's share of lone flip-flops is uncertain by about 10 %.
_SURE_OVERFLOW = 1.1


class DoesNotFit(BnnflowError):
    """The design needs more logic or block RAM than the target has."""


def rom_does_not_fit(model, folding, tgt):
    """True when the ROMs fit neither the block RAMs nor (by estimate) the LUTs."""
    return (estimate_brams(model, folding, tgt.family) > tgt.bram
            and estimate_rom_luts(model, folding) > tgt.lut4)


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
    to fit (see :func:`suggest_ii`). An estimate, not a guarantee:
    :func:`~bnnflow.boards.synth.synthesize` checks the real counts. Raises
    :class:`DoesNotFit` when no folding is expected to fit.
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
