"""Readers of what Yosys and nextpnr reported: cell counts, nextpnr's report, nextpnr's log."""

import json

import pytest

from bnnflow.tool_reports import (
    UNPLACEABLE,
    CellCounts,
    PnrReport,
    TimingFailure,
    Usage,
    cell_counts,
    device_cells,
    placed_logic,
    pnr_report,
    read_pnr_report,
    read_stat,
    timing_failure,
    unplaceable,
)

# Cell counts as Yosys 0.70 reports them after synth_ice40 / synth_ecp5 of Amaranth designs
# ($scopeinfo records the flattened hierarchy).
ICE40_CELLS = {"$scopeinfo": 12, "SB_CARRY": 7, "SB_DFF": 3, "SB_DFFESR": 40, "SB_LUT4": 300,
               "SB_RAM40_4K": 2, "SB_SPRAM256KA": 1}
ECP5_CELLS = {"$scopeinfo": 12, "CCU2C": 6, "DP16KD": 4, "L6MUX21": 13, "LUT4": 236,
              "PFUMX": 28, "TRELLIS_DPR16X4": 3, "TRELLIS_FF": 208}


def test_internal_cells_are_left_out_of_the_device_cells():
    assert device_cells({"$scopeinfo": 3, "$print": 1, "SB_LUT4": 5, "SB$odd": 2}) == {
        "SB_LUT4": 5, "SB$odd": 2}


def test_ice40_counts_by_field():
    counts = cell_counts("ice40", ICE40_CELLS)
    by_type = {k: v for k, v in ICE40_CELLS.items() if k != "$scopeinfo"}
    assert counts == CellCounts("ice40", lut4=300, ff=43, carry=7, bram=2, spram=1,
                                by_type=by_type)
    # An SB_CARRY sits beside a LUT4 in its logic cell: the logic measure is the LUT4 alone.
    assert counts.logic == 300


def test_ecp5_counts_by_field_and_the_carry_cells_in_the_logic_measure():
    counts = cell_counts("ecp5", ECP5_CELLS)
    assert counts == CellCounts("ecp5", lut4=236, ff=208, carry=6, bram=4, spram=0,
                                by_type={k: v for k, v in ECP5_CELLS.items() if k[0] != "$"},
                                lutram=3)
    # nextpnr's TRELLIS_COMB: 3.2 per carry cell, 6 per LUT RAM (measured, boards/README.md).
    assert counts.logic == round(236 + 3.2 * 6 + 6 * 3) == 273


def test_counts_as_report_fields_keep_their_order():
    fields = cell_counts("ice40", ICE40_CELLS).as_dict()
    assert list(fields.items()) == [("lut4", 300), ("carry", 7), ("bram", 2), ("spram", 1),
                                    ("ff", 43)]


def test_a_family_without_the_cell_types_counts_zero():
    assert cell_counts("ecp5", {"SB_LUT4": 5}) == CellCounts("ecp5", 0, 0, 0, 0, 0,
                                                             {"SB_LUT4": 5})


def test_read_stat_counts_the_whole_design(tmp_path):
    # stat -json lists every module and the design; the design's totals count.
    stat = {"modules": {"\\top": {"num_cells_by_type": {"SB_LUT4": 1}}},
            "design": {"num_cells_by_type": ICE40_CELLS}}
    (tmp_path / "stat.json").write_text(json.dumps(stat))
    assert read_stat(tmp_path / "stat.json", "ice40") == cell_counts("ice40", ICE40_CELLS)


PNR = {"fmax": {"clk_a": {"achieved": 141.6631317138672, "constraint": 48},
                "clk_b": {"achieved": 99.996, "constraint": 12},
                "clk_c": {"constraint": 12}},
       "utilization": {"ICESTORM_LC": {"available": 5280, "used": 276},
                       "SB_IO": {"available": 96, "used": 9}, "SB_GB": {"used": 1}}}


def test_pnr_report_fmax_per_clock_and_the_lowest():
    report = pnr_report(PNR)
    # A clock without an achieved frequency is left out.
    assert report.fmax_by_clock == {"clk_a": 141.6631317138672, "clk_b": 99.996}
    assert report.fmax_mhz == 100.0


def test_pnr_report_without_clocks_has_no_fmax():
    assert pnr_report({}) == PnrReport({}, {})
    assert pnr_report({"fmax": {"clk": {"constraint": 12}}}).fmax_mhz is None


@pytest.mark.parametrize(("family", "what", "usage"), [
    ("ice40", "logic", Usage(276, 5280)),
    ("ice40", "ff", Usage(276, 5280)),          # ICESTORM_LC holds the flip-flops too
    ("ice40", "io", Usage(9, 96)),
    ("ice40", "bram", Usage(0, 0)),             # not in the report
    ("ecp5", "logic", Usage(0, 0)),
])
def test_pnr_report_usage_per_family(family, what, usage):
    assert pnr_report(PNR).usage(family, what) == usage


def test_read_pnr_report_reads_the_file(tmp_path):
    (tmp_path / "pnr.json").write_text(json.dumps(PNR))
    report = read_pnr_report(tmp_path / "pnr.json")
    assert report == pnr_report(PNR)
    assert report.cells["SB_GB"] == Usage(1, 0)


@pytest.mark.parametrize(("log", "family", "cells"), [
    ("Info: \t         ICESTORM_LC:    6199/   5280   117%\n", "ice40", 6199),
    ("Info:     TRELLIS_COMB:   276/24288     1%\nInfo:     TRELLIS_COMB: 30001/24288   123%\n",
     "ecp5", 30001),
    ("Info: \t         ICESTORM_LC:    6199/   5280   117%\n", "ecp5", None),
    ("nothing here", "ice40", None),
])
def test_placer_utilization_is_read_from_the_nextpnr_log(log, family, cells):
    assert placed_logic(log, family) == cells


def test_a_missed_clock_is_read_from_the_nextpnr_log():
    log = ("Info: Max frequency for clock 'clk12_0__io': 10.50 MHz (FAIL at 12.00 MHz)\n"
           "Info: Max frequency for clock 'clk12_0__io': 9.87 MHz (FAIL at 12.00 MHz)\n")
    assert timing_failure(log) == TimingFailure("clk12_0__io", 9.87, 12.0)


@pytest.mark.parametrize("log", [
    "Info: Max frequency for clock 'clk12_0__io': 47.40 MHz (PASS at 12.00 MHz)\n",
    "ERROR: something else\n",
])
def test_a_met_clock_is_no_timing_failure(log):
    assert timing_failure(log) is None


@pytest.mark.parametrize("marker", UNPLACEABLE)
def test_unplaceable_markers(marker):
    assert unplaceable(f"ERROR: {marker} cell 'x'\n")


def test_other_errors_are_not_unplaceable():
    assert not unplaceable("ERROR: something else\n")
