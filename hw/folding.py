"""Folding: how many neurons (PE) and input bits (SIMD) each layer processes per cycle.

Every layer kind folds a matrix of ``N = layer.neurons`` rows and ``K = layer.fan_in`` columns,
applied ``layer.output_pixels`` times per input vector (:mod:`bnnflow.model.kinds`); its cycle
count for a folding is its kind's :meth:`~bnnflow.model.kinds.LayerKind.cycles`
(:func:`layer_cycles`). A fully connected layer with ``K`` inputs and ``N`` neurons folded as
``PE x SIMD`` takes ``ceil(N / PE) * ceil(K / SIMD)`` cycles per input vector. ``PE = N,
SIMD = K`` is fully parallel (one vector per cycle for a dense layer). Sizes that PE or SIMD do
not divide are padded in hardware (:mod:`bnnflow.hw.mvtu`), so any ``1 <= PE <= N`` and
``1 <= SIMD <= K`` is allowed.

Fold file format (JSON), one entry per layer, in layer order::

    {"layers": [{"pe": 16, "simd": 32}, {"pe": 8, "simd": 64}, {"pe": 10, "simd": 64}]}

Command-line form: ``--fold 16x32,8x64,10x64`` (``PExSIMD`` per layer, comma separated).
``--fold auto --ii CYCLES`` picks, per layer, the cheapest folding (fewest ``PE * SIMD``,
divisors of the layer size preferred) whose cycle count is at most ``CYCLES``; for a network
with maps, the cycle model then checks the whole design and layers that fall behind a pool's
bursts are folded faster until it takes at most ``CYCLES``. No ``--fold`` means fully parallel.
"""

import json
import math
import os
from dataclasses import dataclass

from ..model.kinds import matrix_cycles

__all__ = ["LayerFold", "layer_cycles", "fully_parallel", "auto_fold", "resolve_folding",
           "fed_by_previous", "check_folding", "parse_fold_string", "load_fold_file", "is_int",
           "pixel_window_misfit", "row_window_misfit", "rows_pay", "ROW_WINDOW_MIN_BITS"]


def is_int(value):
    """An ``int`` that is not a ``bool`` (the parameter checks of the hardware units)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LayerFold:
    """Folding of one layer.

    Parameters
    ----------
    pe : int
        Neurons computed in parallel (processing elements), ``>= 1``.
    simd : int
        Input bits consumed per cycle by each PE, ``>= 1``.

    Raises
    ------
    ValueError
        If ``pe`` or ``simd`` is not a positive integer.
    """

    pe: int
    simd: int

    def __post_init__(self):
        for name in ("pe", "simd"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

    def __str__(self):
        return f"{self.pe}x{self.simd}"


def layer_cycles(layer, fold):
    """Cycles one input vector takes in ``layer`` folded as ``fold``: the layer's II, as its
    kind counts them (:meth:`bnnflow.model.kinds.LayerKind.cycles`; output pixels included;
    ``ceil(N / PE) * ceil(K / SIMD)`` for a dense layer)."""
    return layer.cycles(fold)


def pixel_window_misfit(layer, fold):
    """Why the MVTU of a conv ``layer`` folded as ``fold`` cannot take its windows a pixel a
    cycle (:class:`~bnnflow.hw.pixel_window.PixelWindow`), or ``None`` when it can: its input
    must be a memory (``SF > 1``), ``SIMD`` a multiple of ``Cin`` (a pixel is a whole number of
    chunks of a word) and the ``kh * kw`` pixels of a window no more cycles than the MVTU
    spends on one (``ceil(N/PE) * SF``)."""
    cin, (kh, kw) = layer.in_shape[2], layer.kernel
    m = matrix_cycles(layer.fan_in, layer.neurons, fold)
    if fold.simd >= layer.fan_in:
        return "its MVTU reads the whole window every cycle (SF 1)"
    if fold.simd % cin:
        return f"SIMD {fold.simd} is not a multiple of Cin {cin}"
    if kh * kw > m:
        return f"its {kh * kw} window pixels take longer than the MVTU's {m} cycles a window"
    return None


def row_window_misfit(layer, fold):
    """Why the MVTU of a conv ``layer`` folded as ``fold`` cannot take its windows a window
    row a cycle (:class:`~bnnflow.hw.row_window.RowWindow`), or ``None`` when it can: its input
    must be a memory (``SF > 1``), ``SIMD`` a multiple of ``kw * Cin`` (a window row is a whole
    number of chunks of a word) and the ``kh`` rows of a window no more cycles than the MVTU
    spends on one (``ceil(N/PE) * SF``)."""
    cin, (kh, kw) = layer.in_shape[2], layer.kernel
    m = matrix_cycles(layer.fan_in, layer.neurons, fold)
    if fold.simd >= layer.fan_in:
        return "its MVTU reads the whole window every cycle (SF 1)"
    if fold.simd % (kw * cin):
        return f"SIMD {fold.simd} is not a multiple of kw x Cin = {kw * cin}"
    if kh > m:
        return f"its {kh} window rows take longer than the MVTU's {m} cycles a window"
    return None


#: The smallest window, in bits, that the automatic choice reads a row a cycle. A row window's
#: counters, bank addresses and rotation cost about what a pixel window's do; below this a
#: window in registers and its queue cost less (cnv-mnist's 9-bit first conv at 3 cycles a
#: window, as rows: +349 LUT4 and +118 FF on iCE40, +256 logic on ECP5; its 144-bit second
#: conv: -403 FF, +28 LUT4, -8 block RAMs on iCE40; bench/row_windows.py).
ROW_WINDOW_MIN_BITS = 64


def rows_pay(layer, fold):
    """Whether the automatic choice reads the windows of a conv ``layer`` folded as ``fold`` a
    row a cycle: they can be (:func:`row_window_misfit`) and a window has at least
    :data:`ROW_WINDOW_MIN_BITS` bits."""
    return (layer.fan_in * getattr(layer, "in_bits", 1) >= ROW_WINDOW_MIN_BITS
            and row_window_misfit(layer, fold) is None)


def _window_cost(layer, fold):
    """What a conv layer's windows cost beside its ``PE * SIMD`` XNOR gates, in the same
    units: a window in registers and a window queue's output register are about ``2 K``
    flip-flops and LUT4 (``K`` window bits), a pixel or row window a few counters (0 here)."""
    if (not hasattr(layer, "kernel") or pixel_window_misfit(layer, fold) is None
            or rows_pay(layer, fold)):
        return 0
    return 2 * layer.fan_in * getattr(layer, "in_bits", 1)


def fully_parallel(model):
    """``PE = N, SIMD = K`` (``layer.neurons``, ``layer.fan_in``) for every layer of
    ``model``; a dense layer after a conv or pool layer, which cannot take a whole vector from
    that pixel stream (unless the map is one pixel), gets the widest SIMD below ``K`` that
    takes its pixels (a multiple of the pixel width), so that the default folding of a conv
    network builds. A kind that does not fold (a max-pool, ``folds`` False) gets ``1x1``, as
    :func:`auto_fold` writes."""
    folding = []
    for j, layer in enumerate(model.layers):
        if not getattr(layer, "folds", True):
            folding.append(LayerFold(1, 1))
            continue
        fold = LayerFold(layer.neurons, layer.fan_in)
        accepts = fed_by_previous(model, j, folding)
        if accepts is not None and not accepts(fold):
            simds = [s for s in range(layer.fan_in - 1, 0, -1)
                     if accepts(LayerFold(layer.neurons, s))]
            if simds:
                fold = LayerFold(layer.neurons, simds[0])
        folding.append(fold)
    return folding


def check_folding(model, folding):
    """Validate a folding against ``model``; return it as a list of :class:`LayerFold`.

    ``folding`` is a sequence of :class:`LayerFold` or ``(pe, simd)`` pairs, one per layer.

    Raises
    ------
    ValueError
        If the number of entries differs from the number of layers, or a PE is outside
        ``1..N`` or a SIMD outside ``1..K`` of its layer (``layer.neurons``, ``layer.fan_in``;
        the message names the layer and the allowed range).
    """
    folding = list(folding)
    layers = model.layers
    if len(folding) != len(layers):
        raise ValueError(f"folding must have one entry per layer ({len(layers)}), "
                         f"not {len(folding)}")
    result = []
    for i, (layer, fold) in enumerate(zip(layers, folding, strict=True)):
        k, n = layer.fan_in, layer.neurons
        where = f"layer {i} ({layer.name}, {k} inputs, {n} neurons)"
        if not isinstance(fold, LayerFold):
            try:
                pe, simd = fold
            except (TypeError, ValueError):
                raise ValueError(f"{where}: folding must be a LayerFold or a (pe, simd) pair, "
                                 f"not {fold!r}") from None
            try:
                fold = LayerFold(pe, simd)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        if fold.pe > n:
            raise ValueError(f"{where}: pe must be an integer in 1..{n}, not {fold.pe!r}")
        if fold.simd > k:
            raise ValueError(f"{where}: simd must be an integer in 1..{k}, not {fold.simd!r}")
        result.append(fold)
    return result


def _cheapest(index, layer, target_ii, accepts=None):
    """Cheapest fold of one layer meeting ``target_ii``: key (PE*SIMD and a conv layer's
    window cost, :func:`_window_cost`; non-divisor; cycles).

    The candidates assume ``output_pixels * ceil(N/PE) * ceil(K/SIMD)`` cycles; the layer's
    own count (:func:`layer_cycles`) decides which of them meet the target, and ``accepts``
    (a predicate on :class:`LayerFold` that depends on its SIMD only, or ``None``) which of
    them the hardware can feed.
    """
    k, n = layer.fan_in, layer.neurons
    if not getattr(layer, "folds", True):           # a pool: one pixel a cycle, written 1x1
        n = k = 1
    per_pixel = target_ii // layer.output_pixels    # matrix passes allowed per pixel
    candidates = set()
    for pe in range(1, n + 1):
        m = per_pixel // math.ceil(n / pe)          # synapse folds allowed
        if m >= 1:
            candidates.add((pe, math.ceil(k / min(m, k))))
    for simd in range(1, k + 1):
        m = per_pixel // math.ceil(k / simd)        # neuron folds allowed
        if m >= 1:
            candidates.add((math.ceil(n / min(m, n)), simd))
    # Per SIMD the fewest PE meeting the target is a candidate (cycles fall as PE grows), so
    # ``accepts`` (SIMD multiples of the pixel width the previous layer sends, below K, or K)
    # only filters them: enumerating every PE x SIMD took 10 s on a CNV-size network.
    folds = [f for f in (LayerFold(pe, simd) for pe, simd in candidates)
             if layer_cycles(layer, f) <= target_ii and (accepts is None or accepts(f))]
    if not folds:
        fastest = (layer_cycles(layer, LayerFold(n, k)) if accepts is None else
                   min((layer_cycles(layer, LayerFold(n, simd)) for simd in range(1, k + 1)
                        if accepts(LayerFold(n, simd))), default=None))
        raise ValueError(f"layer {index} ({layer.name}): no folding reaches {target_ii} "
                         f"cycles; it needs at least {fastest}"
                         f"{' (fully parallel)' if accepts is None else ''}")

    def key(f):
        divisors = (n % f.pe == 0) + (k % f.simd == 0)
        return (f.pe * f.simd + _window_cost(layer, f), -divisors, layer_cycles(layer, f), f.pe)

    return min(folds, key=key)


def fed_by_previous(model, j, folding):
    """For a layer after a conv or pool layer (which send one pixel per transfer), the
    predicate saying whether a folding of layer ``j`` takes those pixels (it depends on the
    folding's SIMD only); else ``None``."""
    from .units import UNITS, unit_kind

    if j == 0:
        return None
    prev, layer = model.layers[j - 1], model.layers[j]
    kind_prev = UNITS.get(prev.kind)
    if kind_prev is None or not kind_prev.pixels:
        return None
    width = kind_prev.out_chunk(prev, folding[j - 1])
    kind = unit_kind(layer, f"layer {j}")
    return lambda fold: kind.takes_chunk(layer, fold, width)


def auto_fold(model, target_ii, *, modelled=True):
    """Per layer, the cheapest folding whose cycle count is at most ``target_ii``; for a
    network with maps, sped up where needed so that the whole design meets ``target_ii``.

    Cheapest means the fewest ``PE * SIMD`` (XNOR gates); among equals, PE and SIMD that divide
    the layer (no padding) are preferred, then fewer cycles. A target below the fully parallel
    II (1) cannot be met. A conv network can run slower than its slowest layer (a layer behind
    a pool falls behind the bursts the pool passes; :func:`bnnflow.hw.timing.stream_timing`):
    with ``modelled``, the cycle model checks the design and layers are folded faster
    (:func:`_meet_modelled`) until it meets ``target_ii``.

    Parameters
    ----------
    model : BnnModel
    target_ii : int
        Cycles per image the design may take.
    modelled : bool
        Check a network with maps on the cycle model (seconds for a CNV-size network); without
        it, only the layers' own cycles are compared with ``target_ii`` (the resource searches
        that try many IIs).

    Returns
    -------
    (folding, achieved_ii) : list of LayerFold, int or float
        ``achieved_ii`` is the design's II: the largest per-layer cycle count for an MLP (or
        without ``modelled``), the cycle model's for a network with maps. At most
        ``target_ii`` except when no folding found by speeding up layers meets it (then the
        best one found, which the caller can report).

    Raises
    ------
    ValueError
        If ``target_ii`` is not a positive integer, or a layer cannot reach it even fully
        parallel (a kind with more output pixels than ``target_ii``).
    """
    if not is_int(target_ii) or target_ii < 1:
        raise ValueError(f"target II must be a positive integer number of cycles (1 = fully "
                         f"parallel), not {target_ii!r}")
    folding = _fold_under(model, [target_ii] * len(model.layers))
    achieved = max(layer_cycles(layer, fold)
                   for layer, fold in zip(model.layers, folding, strict=True))
    if not modelled or not any(hasattr(layer, "in_shape") for layer in model.layers):
        return folding, achieved
    return _meet_modelled(model, folding, target_ii)


def _fold_under(model, caps, folding=()):
    """``folding`` extended by the cheapest fold of each further layer within its cycle cap."""
    folding = list(folding)
    for j in range(len(folding), len(model.layers)):
        folding.append(_cheapest(j, model.layers[j], caps[j],
                                 fed_by_previous(model, j, folding)))
    return folding


#: Layer speed-ups :func:`_meet_modelled` tries per layer (each a cycle-model run).
MODEL_TRIES_PER_LAYER = 3


def _modelled_ii(model, folding):
    from .top import BnnTop

    top = BnnTop(model, folding)
    top._MustUse__silence = True        # only its parameters are read, nothing is elaborated
    return top.ii


def _meet_modelled(model, folding, target_ii):
    """Fold layers faster until the cycle model's II meets ``target_ii``: ``(folding, ii)``.

    Each step gives one layer the next faster folding (its cycle cap one below its cycles),
    and refolds the layers after it (which may take its pixels in other chunks). The layer is
    the slowest of those fed in bursts (behind a pool or a strided conv), which is where a
    design falls behind; when none of those can go faster, the slowest layer. At most
    :data:`MODEL_TRIES_PER_LAYER` steps per layer; the fastest design seen is returned.
    """
    layers = model.layers
    caps = [target_ii] * len(layers)
    ii = _modelled_ii(model, folding)
    best = (ii, folding)
    stuck = set()
    bursty = [j for j in range(1, len(layers))
              if getattr(layers[j - 1], "stride", 1) > 1 or _is_pool(layers[j - 1])]
    for _ in range(MODEL_TRIES_PER_LAYER * len(layers)):
        if ii <= target_ii:
            return folding, ii
        movable = [j for j in range(len(layers)) if j not in stuck
                   and not _is_pool(layers[j]) and layer_cycles(layers[j], folding[j]) > 1]
        pick = [j for j in bursty if j in movable] or movable
        if not pick:
            break
        j = max(pick, key=lambda j: layer_cycles(layers[j], folding[j]))
        cand_caps = caps[:j] + [layer_cycles(layers[j], folding[j]) - 1] + caps[j + 1:]
        try:
            candidate = _fold_under(model, cand_caps, folding[:j])
        except ValueError:          # layer j has no faster folding (its chunk width)
            stuck.add(j)
            continue
        caps, folding = cand_caps, candidate
        ii = _modelled_ii(model, folding)
        best = min(best, (ii, folding), key=lambda b: b[0])
    return best[1], best[0]


def _is_pool(layer):
    return not getattr(layer, "folds", True)


def parse_fold_string(text):
    """Parse the command-line form ``"16x32,8x64"`` into ``[(16, 32), (8, 64)]``."""
    pairs = []
    for part in text.split(","):
        part = part.strip()
        pe, sep, simd = part.lower().partition("x")
        if not sep or not pe.strip().isdigit() or not simd.strip().isdigit():
            raise ValueError(f"fold must be 'auto', a JSON file or PExSIMD per layer like "
                             f"'16x32,8x64', not {text!r} (bad entry {part!r})")
        pairs.append((int(pe), int(simd)))
    return pairs


def load_fold_file(path):
    """Read a fold file (``{"layers": [{"pe": .., "simd": ..}, ...]}``) into pairs."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"fold file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"fold file {str(path)!r} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise ValueError(f"fold file {str(path)!r} must hold "
                         f'{{"layers": [{{"pe": P, "simd": S}}, ...]}}')
    pairs = []
    for i, entry in enumerate(data["layers"]):
        if not isinstance(entry, dict) or set(entry) != {"pe", "simd"}:
            raise ValueError(f"fold file {str(path)!r}: layer {i} must be "
                             f'{{"pe": P, "simd": S}}, not {entry!r}')
        pairs.append((entry["pe"], entry["simd"]))
    return pairs


def resolve_folding(model, fold=None, ii=None):
    """Turn a user's folding request into a validated list of :class:`LayerFold`.

    Parameters
    ----------
    model : BnnModel
    fold : None, "auto", str or sequence
        ``None``: fully parallel (or ``auto`` when ``ii`` is given); ``"fit"`` is refused here
        (``bnnflow.boards.fit.fit_by_placement`` decides it on a target); ``"auto"``: cheapest
        folding for ``ii``; a path to a JSON fold file; a ``"PExSIMD,..."`` string; or a
        sequence of :class:`LayerFold` / ``(pe, simd)`` pairs.
    ii : int or None
        Target initiation interval for ``"auto"``.

    Raises
    ------
    ValueError
        With a message naming the allowed values.
    """
    if fold is None:
        if ii is None:
            return fully_parallel(model)
        fold = "auto"
    if isinstance(fold, str):
        if fold == "auto":
            if ii is None:
                raise ValueError("fold 'auto' needs a target II (--ii CYCLES)")
            return auto_fold(model, ii)[0]
        if fold == "fit":
            # Decided by placing designs, which only the commands that know a target do.
            raise ValueError("fold 'fit' needs a target to place on (synth --target, build "
                             "--board, verilog --target)")
        if ii is not None:
            raise ValueError("a target II (--ii) only applies with fold 'auto'")
        if os.path.exists(fold) or fold.lower().endswith(".json"):
            return check_folding(model, load_fold_file(fold))
        return check_folding(model, parse_fold_string(fold))
    if ii is not None:
        raise ValueError("a target II (--ii) only applies with fold 'auto'")
    if isinstance(fold, os.PathLike):
        return check_folding(model, load_fold_file(fold))
    return check_folding(model, fold)
