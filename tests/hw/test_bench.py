# amaranth: UnusedElaboratable=no
"""hw.bench (its figures from the tools' reports) and the popcount style option of MVTU /
BnnTop / generate."""

import numpy as np
import pytest
from amaranth.back import rtlil

from bnnflow.hw import bench, mvtu
from bnnflow.hw.popcount import DEFAULT_STYLE
from bnnflow.hw.verilog import generate
from bnnflow.model.random_net import random_model
from bnnflow.tool_reports import cell_counts, pnr_report


def _mvtu_rtlil(**kw):
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 2, size=(4, 64))
    return rtlil.convert(mvtu.MVTU(weights, np.full((4, 1), 32), (4, 64), 2, **kw), name="mvtu")


@pytest.mark.parametrize(("style", "kept"), [({}, DEFAULT_STYLE == "keep"),
                                             ({"popcount_style": "generic"}, False),
                                             ({"popcount_style": "keep"}, True)])
def test_popcount_style_reaches_the_mvtu_popcounts(style, kept):
    assert ("attribute \\keep" in _mvtu_rtlil(**style)) == kept


def test_generate_records_the_popcount_style_in_the_sidecar():
    model = random_model([20, 8, 4], seed=1)
    text_g, side_g = generate(model, pipeline=1, popcount_style="generic")
    text_k, side_k = generate(model, pipeline=1)
    assert side_g["popcount_style"] == "generic" and side_k["popcount_style"] == DEFAULT_STYLE
    assert text_g != text_k


@pytest.mark.parametrize("bad", ["ecp5", 3])
def test_unknown_popcount_style_is_rejected(bad):
    with pytest.raises(ValueError, match=f"^popcount_style must be one of 'generic', 'keep', "
                                         f"not {bad!r}$"):
        mvtu.MVTU(np.ones((2, 4)), np.ones((2, 1)), popcount_style=bad)
    with pytest.raises(ValueError, match=f"^style must be one of 'generic', 'keep', not "
                                         f"{bad!r}$"):
        bench.generation_cost([8, 4], style=bad)


def test_synth_figures_come_from_yosys_cell_counts():
    counts = cell_counts("ecp5", {"$scopeinfo": 3, "CCU2C": 6, "L6MUX21": 13, "LUT4": 56,
                                  "PFUMX": 28, "TRELLIS_DPR16X4": 1, "TRELLIS_FF": 54})
    # The wide-function muxes are left out of "cells", as in bench/results.json.
    assert bench._cell_figures(counts, 32) == {
        "cells": {"CCU2C": 6, "LUT4": 56, "TRELLIS_DPR16X4": 1, "TRELLIS_FF": 54},
        "synapses": 32, "lut4_per_synapse": 1.75, "lut4_with_carry_per_synapse": 2.125}
    ice40 = cell_counts("ice40", {"SB_CARRY": 1774, "SB_DFFESR": 1871, "SB_LUT4": 3768})
    assert bench._cell_figures(ice40, 4096) == {
        "cells": {"SB_CARRY": 1774, "SB_DFFESR": 1871, "SB_LUT4": 3768}, "synapses": 4096,
        "lut4_per_synapse": 0.9199}


def test_pnr_figures_come_from_the_nextpnr_report():
    report = pnr_report({"fmax": {"clk": {"achieved": 213.6812, "constraint": 100}},
                         "utilization": {"ICESTORM_LC": {"available": 7680, "used": 46},
                                         "SB_IO": {"available": 206, "used": 18}}})
    assert bench._pnr_figures(report, 32) == {
        "fmax_mhz": 213.68, "utilisation": {"ICESTORM_LC": 46, "SB_IO": 18},
        "lc_per_synapse": 1.4375}
    ecp5 = pnr_report({"utilization": {"TRELLIS_COMB": {"available": 24288, "used": 84}}})
    assert bench._pnr_figures(ecp5, 32) == {"fmax_mhz": None,
                                            "utilisation": {"TRELLIS_COMB": 84}}
