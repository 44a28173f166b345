"""Choosing a folding for a target: whether a design is expected to fit, and at which II.

:func:`fit_folding` picks a folding expected to fit a target, :func:`suggest_ii` the smallest
power-of-two II whose ``auto`` folding should fit (scaled by a measurement when there is one),
and :func:`checked_folding` refuses, before any tool runs, a folding that cannot fit.
:class:`DoesNotFit` says by how much and carries a hint of what would fit. The predictions are
those of :mod:`bnnflow.boards.estimate`; the limits here (the flip-flop share, the "sure"
margins) say how far they are trusted.
"""

import math

from ..errors import BnnflowError
from .estimate import (
    estimate_brams,
    estimate_brams_used,
    estimate_ffs,
    estimate_logic,
    estimate_rom_luts,
    fit_brams,
    routable_brams,
)
from .platforms import BOARDS
from .targets import get_target

__all__ = ["DoesNotFit", "NotPlaced", "fit_folding", "fit_by_placement", "suggest_ii",
           "checked_folding", "rom_does_not_fit", "ICE40_FF_SHARE_LIMIT", "FIT_ATTEMPTS"]

#: Foldings ``--fold fit`` places at most before it gives up (each one a Yosys run and nextpnr
#: with up to ``PLACE_ATTEMPTS`` seeds, minutes on the larger devices).
FIT_ATTEMPTS = 4

#: Largest share of an iCE40's logic cells that flip-flops may take in a folding that
#: :func:`suggest_ii` proposes: flip-flops with distinct enables cannot share a logic tile
#: (placed at 50 %, failed at 47 % and 59 % with other structures; boards/README.md). It applies
#: to the estimate; ``--fold fit`` checks by placing.
ICE40_FF_SHARE_LIMIT = 0.55

#: Estimated logic (:func:`estimate_logic`) over the device's logic cells above which a
#: folding is refused before any tool runs.
_SURE_ESTIMATE = 2.0

#: Measured logic need (:func:`logic_need`) above which synthesis stops before nextpnr: the
#: estimate's share of lone flip-flops is uncertain by about 10 %.
_SURE_OVERFLOW = 1.1


class DoesNotFit(BnnflowError):
    """The design needs more logic or block RAM than the target has."""


class NotPlaced(DoesNotFit):
    """The tools found this folding too large for the device: more than it has by Yosys'
    counts, or no legal placement by nextpnr (``--fold fit`` then tries a slower folding).

    Parameters
    ----------
    message : str
    need : int or None
        Logic cells measured (:func:`~bnnflow.boards.estimate.logic_need` of Yosys' counts, or
        what nextpnr's placer wanted); ``None`` when no tool ran.
    """

    def __init__(self, message, need=None):
        super().__init__(message)
        self.need = need


def rom_does_not_fit(model, folding, tgt):
    """True when the ROMs fit neither the block RAMs nor (by estimate) the LUTs."""
    return (estimate_brams(model, folding, tgt.family) > tgt.bram
            and estimate_rom_luts(model, folding, tgt.family) > tgt.lut4)


def suggest_ii(model, folding, needed=None, available=None, brams_available=None, family=None,
               margin=0.9, *, pipeline=0, failed=False):
    """A target II whose ``auto`` folding should fit, or None: a power of two, or the fastest
    II the network can reach when that lies between two (a conv network's first layer takes
    its ``H x W`` input a pixel a cycle: 784 for 28x28, where 512 cannot be met and 1024 is a
    third slower).

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
    smallest candidate that passes (block RAM use is not monotonic in II: very narrow ROMs
    waste block RAM width).
    """
    from ..hw.folding import auto_fold, fully_parallel, layer_cycles

    family = family or "ice40"
    current = estimate_logic(model, folding, family, pipeline)
    scale = needed / current if needed is not None else 1.0
    longest = max(layer.in_width * layer.out_width for layer in model.layers)

    def fits(ii):
        try:
            # The resources of the layers' foldings; fit_folding then models the design.
            layer_folds, _ = auto_fold(model, ii, modelled=False)
        except ValueError:      # below the II a layer reaches fully parallel (a conv layer)
            return False
        if needed is not None:
            logic = estimate_logic(model, layer_folds, family, pipeline)
            if logic * scale > margin * available or (failed and logic >= current):
                return False
            if (family == "ice40" and estimate_ffs(model, layer_folds, pipeline, family)
                    > ICE40_FF_SHARE_LIMIT * available):
                return False
        return brams_available is None or (
            fit_brams(model, layer_folds, family) <= brams_available
            and estimate_brams_used(model, layer_folds, family) <= routable_brams(family,
                                                                          brams_available))

    # The fastest II: every layer at its fastest folding (1 for an MLP).
    floor = max(layer_cycles(layer, fold)
                for layer, fold in zip(model.layers, fully_parallel(model), strict=True))
    candidates = sorted({1 << e for e in range(longest.bit_length() + 1)} | {floor})
    for ii in candidates:
        if ii >= floor and fits(ii):
            return ii
    return None


def _fit_hint(model, folding, needed, available, bram_avail, family, pipeline=0, failed=True):
    ii = suggest_ii(model, folding, needed, available, bram_avail, family, pipeline=pipeline,
                    failed=failed)
    if ii is None:
        return ("no folding of this network is expected to fit; "
                + _larger_target(model, available, family, pipeline))
    return f"try --fold fit, or --fold auto --ii {ii} (estimated to fit)"


def _larger_target(model, available, family, pipeline=0):
    """Advice naming the smallest larger target that :func:`fit_folding` expects to fit."""
    from .targets import TARGETS

    for tgt in sorted(TARGETS.values(), key=lambda t: t.lut4):
        if tgt.lut4 <= available:
            continue
        try:
            # The advice names an --ii to ask for: the layers' cycles, a whole number.
            _, ii = fit_folding(model, tgt.name, pipeline=pipeline, advise=False,
                                modelled=False)
        except DoesNotFit:
            continue
        boards = [b.name for b in BOARDS.values() if b.target == tgt.name]
        on = f", board {' or '.join(boards)}" if boards else ""
        return (f"choose a larger target ({tgt.name}{on}, with --fold auto --ii {ii} is "
                f"expected to fit)")
    return "no supported target is expected to fit it"


def _rom_hint(model, folding, tgt):
    """Fit hint when only the ROM estimate exists: logic from :func:`estimate_logic`."""
    needed = estimate_logic(model, folding, tgt.family)
    return _fit_hint(model, folding, needed, tgt.lut4, tgt.bram, tgt.family, failed=False)


def fit_folding(model, target, *, pipeline=0, advise=True, modelled=True):
    """A folding expected to fit ``target``: ``(folding, ii)``.

    Fully parallel when the estimate (:func:`estimate_logic`: LUT4 and flip-flops) fits 90 %
    of the device's logic cells, otherwise ``auto`` at the smallest II predicted to fit (a
    power of two, or the network's fastest II between two; see :func:`suggest_ii`). An
    estimate, not a guarantee: :func:`~bnnflow.boards.synth.synthesize` checks the real
    counts. Raises
    :class:`DoesNotFit` when no folding is expected to fit; with ``advise`` its message gives
    the slowest folding's estimate and names a larger target expected to fit. ``ii`` is the
    design's (:func:`~bnnflow.hw.folding.auto_fold`: the cycle model's for a network with
    maps, which folds the layers that fall behind a pool faster); without ``modelled``, the
    slowest layer's cycles.
    """
    from ..hw.folding import auto_fold, fully_parallel

    tgt = get_target(target)
    full = fully_parallel(model)
    ii = suggest_ii(model, full, estimate_logic(model, full, tgt.family, pipeline), tgt.lut4,
                    tgt.bram, tgt.family, pipeline=pipeline)
    if ii is None:
        message = f"no folding of this network is expected to fit the {tgt.name}"
        if advise:
            message += (f": {_slowest_need(model, tgt, pipeline)}; "
                        + _larger_target(model, tgt.lut4, tgt.family, pipeline))
        raise DoesNotFit(message)
    return auto_fold(model, ii, modelled=modelled)


def _slowest_need(model, tgt, pipeline):
    """What the slowest folding of ``model`` is estimated to need on ``tgt``, as text."""
    from ..hw.folding import auto_fold

    longest = max(layer.in_width * layer.out_width for layer in model.layers)
    try:
        folding, ii = auto_fold(model, longest, modelled=False)
    except ValueError:          # a layer needs more cycles than that (not expected)
        return "no folding was estimated"
    logic = estimate_logic(model, folding, tgt.family, pipeline)
    brams = estimate_brams(model, folding, tgt.family)
    return (f"at its slowest folding (II {ii}) it is estimated at {logic} logic cells of "
            f"{tgt.lut4} and {brams} block RAMs of {tgt.bram}")


def checked_folding(model, folding, ii, tgt, device=None, pipeline=0):
    """Resolve a folding for ``tgt`` and check that it can fit: ``(layer_folds, text)``, the
    :class:`~bnnflow.hw.folding.LayerFold` of each layer and their ``PExSIMD,...`` text.

    Refused before any tool runs: weight ROMs that fit neither the block RAMs nor the logic,
    and designs estimated (:func:`estimate_logic`) at more than twice the device's logic
    cells (the estimates are within about 20 %; Yosys alone takes minutes on such designs).

    Raises
    ------
    BnnflowError
        An impossible folding (the message of :func:`bnnflow.hw.folding.resolve_folding`).
    NotPlaced
        Weights that fit neither the block RAMs nor, by estimate, the logic of ``device``
        (default: the target's name), or logic far over the device, with a folding that
        would fit.
    """
    from ..hw.folding import resolve_folding

    try:
        layer_folds = resolve_folding(model, folding, ii)
    except ValueError as e:
        raise BnnflowError(str(e)) from None
    fold_text = ",".join(str(f) for f in layer_folds)
    if rom_does_not_fit(model, layer_folds, tgt):
        rom_need = estimate_brams(model, layer_folds, tgt.family)
        raise NotPlaced(
            f"the weight ROMs of folding {fold_text} need at least {rom_need} block RAMs, the "
            f"{device or tgt.name} has {tgt.bram} ({rom_need - tgt.bram} too many), and about "
            f"{estimate_rom_luts(model, layer_folds, tgt.family)} LUT4 in logic; "
            f"{_rom_hint(model, layer_folds, tgt)}")
    est = estimate_logic(model, layer_folds, tgt.family, pipeline)
    if est > _SURE_ESTIMATE * tgt.lut4:
        raise NotPlaced(
            f"folding {fold_text} is estimated at {est} logic cells (LUT4 and flip-flops), the "
            f"{device or tgt.name} has {tgt.lut4} ({est / tgt.lut4:.0%}); "
            + _fit_hint(model, layer_folds, est, tgt.lut4, tgt.bram, tgt.family, pipeline,
                        False), est)
    return layer_folds, fold_text


def _fold_text(folding):
    return ",".join(str(f) for f in folding)


def _next_folding(model, layer_folds, ii, tgt, pipeline, tried):
    """After ``layer_folds`` (II ``ii``) did not place: ``(layer_folds, ii)`` of the smallest
    power-of-two II above ``ii`` whose ``auto`` folding is new, needs less estimated logic and
    fits the block RAMs; ``None`` when there is none (every layer at one synapse per cycle)."""
    from ..hw.folding import auto_fold

    current = estimate_logic(model, layer_folds, tgt.family, pipeline)
    longest = max(layer.in_width * layer.out_width for layer in model.layers)
    target = math.ceil(ii) * 2         # a map network's modelled II may be a fraction
    while target <= 2 * longest:
        cand, achieved = auto_fold(model, target)
        if (_fold_text(cand) not in tried
                and estimate_logic(model, cand, tgt.family, pipeline) < current
                and fit_brams(model, cand, tgt.family) <= tgt.bram):
            return cand, achieved
        target *= 2
    return None


def fit_by_placement(model, target, place, *, pipeline=0, progress=None, device=None):
    """``--fold fit``: the fastest folding that ``target`` really places and routes.

    The estimate's choice (:func:`fit_folding`) is tried first; ``place(folding)`` runs the
    tools on it and returns their result, or raises :class:`NotPlaced`. After a failure the
    next slower folding is tried (:func:`_next_folding`: a larger II with less estimated
    logic), at most :data:`FIT_ATTEMPTS` in all, each reported through ``progress``.

    Returns
    -------
    (result, folding, attempts)
        ``place``'s result for the folding that placed; ``attempts`` lists every folding tried
        in order, as ``{"folding", "ii", "placed"}`` (and ``"reason"`` for those that did not).

    Raises
    ------
    DoesNotFit
        Once, when the estimate expects no folding to fit, or when no folding tried placed
        (naming them, and a larger target if one is expected to fit).
    """
    tgt = get_target(target)
    device = device or tgt.name
    say = progress or (lambda msg: None)
    layer_folds, ii = fit_folding(model, target, pipeline=pipeline)
    attempts = []
    while True:
        text = _fold_text(layer_folds)
        say(f"--fold fit: placing {text} (II {ii}) on the {device}, attempt "
            f"{len(attempts) + 1} of at most {FIT_ATTEMPTS}")
        try:
            result = place(layer_folds)
        except NotPlaced as e:
            attempts.append({"folding": text, "ii": ii, "placed": False, "reason": str(e)})
            nxt = None
            if len(attempts) < FIT_ATTEMPTS:
                nxt = _next_folding(model, layer_folds, ii, tgt, pipeline,
                                    {a["folding"] for a in attempts})
            if nxt is None:
                tried = ", ".join(f"{a['folding']} (II {a['ii']})" for a in attempts)
                more = ("" if len(attempts) < FIT_ATTEMPTS
                        else f" (the limit of {FIT_ATTEMPTS} attempts)")
                raise DoesNotFit(
                    f"no folding of this network placed on the {device}{more}: tried {tried}; "
                    + _larger_target(model, tgt.lut4, tgt.family, pipeline)) from None
            say(f"--fold fit: {text} did not place ({str(e).split(';')[0]}); trying a slower "
                f"folding")
            layer_folds, ii = nxt
            continue
        attempts.append({"folding": text, "ii": ii, "placed": True})
        return result, layer_folds, attempts
