"""The fit behind :data:`bnnflow.boards.estimate_mvtu.MVTU_LUT` (``bench/unit_luts.py fit``).

The coefficients in use (:func:`fit_designs`, per family): the terms of
:func:`~bnnflow.boards.estimate_mvtu.mvtu_terms` summed over each flattened design, beside the
fully parallel layers' weights, the map units' LUT4 (as
:func:`~bnnflow.boards.estimate_maps.map_unit_luts` gives them, one scale fitted: about 1) and
the argmax (classes x popcount bits, and a constant), non-negative least squares weighted by
``1 / sqrt(LUT4)``. As a check of the terms unit by unit (:func:`fit_units`): every folded
MVTU's own LUT4 in the iCE40 ``-noflatten`` designs (per module, ECP5 LUT4 moved by up to
25 % against the flattened design, iCE40 by 1 to 10 %).
"""

import numpy as np
from scipy.optimize import nnls
from unit_luts import make_folding, make_model

from bnnflow.boards import estimate as E
from bnnflow.boards import estimate_mvtu as M
from bnnflow.tool_reports import cell_counts


def _mvtus(model, folding):
    return zip(E._mvtu_layers(model, folding), E._mvtu_streams(model, folding), strict=True)


def _full(layer, fold):
    return M.rom_words(layer, fold) == 1


def _unit_logic(modules, prefix):
    cells = {}
    for name, by_type in modules.items():
        if name == prefix or name.startswith(prefix + "."):
            for cell, n in by_type.items():
                cells[cell.split("\\")[-1]] = cells.get(cell.split("\\")[-1], 0) + n
    return cell_counts("ice40", cells).logic


def fit_units(rows):
    """iCE40 -noflatten: each MVTU's own LUT4 (a check of the terms, unit by unit)."""
    X, y, fp, other = [], [], [], []
    for row in (r for r in rows if "modules" in r):
        model = make_model(row)
        folding = make_folding(row, model)
        layers = list(model.layers)
        inside = 0
        for (layer, fold), (in_chunk, out_chunks) in _mvtus(model, folding):
            j = layers.index(layer)
            prefix = f"bnnflow_synth.bnn.layer_{j}" + (".mvtu" if layer.kind in E.CONV_KINDS
                                                        else "")
            logic = _unit_logic(row["modules"], prefix)
            if _full(layer, fold):
                fp.append((layer.fan_in * layer.neurons * layer.in_bits, logic))
                continue
            terms = M.mvtu_terms(layer, fold, in_chunk, out_chunks, "ice40")
            X.append([terms[t] for t in M.TERMS])
            y.append(logic - terms["lutram"])
        for j in range(len(layers)):
            inside += _unit_logic(row["modules"], f"bnnflow_synth.bnn.layer_{j}")
        total = _unit_logic(row["modules"], "bnnflow_synth")
        other.append((M.argmax_bits(model.layers[-1]), total - inside))
    X, y = np.array(X, float), np.array(y, float)
    w = 1 / np.sqrt(np.maximum(y, 20))
    coef, _ = nnls(X * w[:, None], y * w)
    err = (X @ coef - y) / np.maximum(y, 1)
    print(f"iCE40 -noflatten: {len(y)} folded MVTUs, |error| median "
          f"{100 * np.median(abs(err)):.1f} %, "
          f"90th percentile {100 * np.percentile(abs(err), 90):.1f} %")
    print("  unit by unit:", dict(zip(M.TERMS, np.round(coef, 3).tolist(), strict=True)))
    if fp:
        a = np.array(fp, float)
        print(f"  fully parallel: {a[:, 1].sum() / a[:, 0].sum():.3f} LUT4 per weight "
              f"({len(a)} layers)")
    o = np.array(other, float)
    oc = np.linalg.lstsq(np.c_[o[:, 0], np.ones(len(o))], o[:, 1], rcond=None)[0]
    print(f"  argmax and wrapper: {oc[0]:.2f} per class bit + {oc[1]:.0f}")


def fit_designs(rows, family):
    """The coefficients in use: the terms summed over each flattened design of ``family``."""
    X, y = [], []
    for row in (r for r in rows if r["flat"] and r["family"] == family):
        model = make_model(row)
        folding = make_folding(row, model)
        terms_sum = np.zeros(len(M.TERMS))
        fixed, full = 0.0, 0.0
        for (layer, fold), (in_chunk, out_chunks) in _mvtus(model, folding):
            if _full(layer, fold):
                full += layer.fan_in * layer.neurons * layer.in_bits
                continue
            terms = M.mvtu_terms(layer, fold, in_chunk, out_chunks, family)
            terms_sum += [terms[t] for t in M.TERMS]
            fixed += terms["lutram"]
        maps = sum(E.map_unit_luts(layer, unit, family) for layer, unit in
                   E._map_units(model, folding))
        X.append([*terms_sum, full, maps, M.argmax_bits(model.layers[-1]), 1])
        y.append(cell_counts(family, row["design_cells"]).logic - fixed)
    X, y = np.array(X, float), np.array(y, float)
    w = 1 / np.sqrt(np.maximum(y, 100))
    coef, _ = nnls(X * w[:, None], y * w)
    err = (X @ coef - y) / y
    names = [*M.TERMS, "fully parallel per weight", "map units scale", "argmax per class bit",
             "argmax and wrapper"]
    print(f"{family}: {len(y)} flattened designs, |error| median "
          f"{100 * np.median(abs(err)):.1f} %, "
          f"largest {100 * abs(err).max():.1f} %")
    print("  ", dict(zip(names, np.round(coef, 3).tolist(), strict=True)))


def compare(rows):
    """The current estimate against each design's Yosys logic (iCE40 -noflatten: the sum of
    the modules, which the flattened design undercuts by 1-10 %; flattened apart)."""
    for fam, flat in (("ice40", False), ("ice40", True), ("ecp5", True)):
        errs = []
        for row in (r for r in rows if r["family"] == fam and r["flat"] == flat):
            model = make_model(row)
            folding = make_folding(row, model)
            est = E.estimate_luts(model, folding, fam)
            true = cell_counts(fam, row["design_cells"]).logic
            errs.append(est / true - 1)
        e = np.array(errs)
        if len(e):
            print(f"estimate_luts, {fam}{'' if flat else ' -noflatten'}, {len(e)} designs: "
                  f"median {100 * np.median(e):+.1f} %, "
                  f"|error| mean {100 * np.mean(abs(e)):.1f} %, from {100 * e.min():+.0f} to "
                  f"{100 * e.max():+.0f} %")


def fit_all(rows):
    fit_units([r for r in rows if r["family"] == "ice40"])
    for family in ("ice40", "ecp5"):
        fit_designs(rows, family)
    compare(rows)
