"""PLL parameter search: known-good settings from icepll / ecppll, ranges, at-most search."""

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnflow.boards.pll import (
    ECP5_LIMITS,
    ICE40_LIMITS,
    ecp5_pll,
    ice40_filter_range,
    ice40_pll,
    pll_for,
)
from bnnflow.errors import BnnflowError

MHZ = 1_000_000


# (f_in, f_out, DIVR, DIVF, DIVQ, FILTER_RANGE): icepll output quoted in public projects
# (theo-brown/f-of-e-tools pll_module.v, wieker/electrolyser ipll.v, an iCEstick rgb_pll
# note) and the brief (icepll -i 12 -o 48).
ICEPLL = [
    (12, 48, 0, 63, 4, 1),
    (12, 96, 0, 63, 3, 1),
    (48, 60, 0, 19, 4, 4),
    (48, 100, 2, 49, 3, 1),
    (48, 150, 1, 24, 2, 2),
    (96, 16, 2, 31, 6, 3),
    (48, 16, 2, 63, 6, 1),
    (48, 24, 0, 15, 5, 4),
]


@pytest.mark.parametrize(("f_in", "f_out", "divr", "divf", "divq", "filt"), ICEPLL)
def test_ice40_search_matches_icepll(f_in, f_out, divr, divf, divq, filt):
    cfg = ice40_pll(f_in * MHZ, f_out * MHZ, at_most=False)
    assert cfg.params == {"FEEDBACK_PATH": "SIMPLE", "DIVR": divr, "DIVF": divf, "DIVQ": divq,
                          "FILTER_RANGE": filt}
    assert cfg.f_out == f_out * MHZ
    # An exact request gives the same answer in at-most mode.
    assert ice40_pll(f_in * MHZ, f_out * MHZ).params == cfg.params


# (f_in, f_out, CLKI_DIV, CLKFB_DIV, CLKOP_DIV, VCO MHz): ecppll output quoted in
# olofk/serv ecp5_evn_pll.v (12 -> 16) and BrunoLevy/learn-fpga pll_ulx3s.v (25 -> ...), and
# the divider table in ecppll.cpp's header where ecppll's VCO rule (nearest 600 MHz) agrees.
ECPPLL = [
    (12, 16, 3, 4, 37, 592),
    (25, 100, 1, 4, 6, 600),
    (25, 120, 5, 24, 5, 600),
    (25, 60, 5, 12, 10, 600),
    (25, 75, 1, 3, 8, 600),
    (25, 50, 1, 2, 12, 600),
    (12, 48, 1, 4, 12, 576),
    (12, 60, 1, 5, 10, 600),
    (20, 30, 2, 3, 20, 600),
    (45, 30, 3, 2, 20, 600),
    (12, 96, 1, 8, 6, 576),
    (43, 86, 1, 2, 7, 602),
]


@pytest.mark.parametrize(("f_in", "f_out", "clki", "clkfb", "clkop", "vco"), ECPPLL)
def test_ecp5_search_matches_ecppll(f_in, f_out, clki, clkfb, clkop, vco):
    cfg = ecp5_pll(f_in * MHZ, f_out * MHZ, at_most=False)
    assert cfg.params == {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
                          "CLKOP_CPHASE": clkop // 2, "CLKOP_FPHASE": 0, "FEEDBK_PATH": "CLKOP"}
    assert cfg.f_out == f_out * MHZ and cfg.f_vco == vco * MHZ


def test_serv_phase_matches_ecppll():
    # ecp5_evn_pll.v: CLKOP_DIV 37, CLKOP_CPHASE 18.
    assert ecp5_pll(12 * MHZ, 16 * MHZ).params["CLKOP_CPHASE"] == 18


def ice40_outputs(f_in):
    """Every output frequency an iCE40 PLL makes from ``f_in`` (independent enumeration)."""
    lim = {k: (Fraction(lo) * MHZ, Fraction(hi) * MHZ) for k, (lo, hi) in ICE40_LIMITS.items()
           if k.startswith("f_")}
    outs = set()
    for divr in range(16):
        pfd = Fraction(f_in) / (divr + 1)
        if not lim["f_pfd"][0] <= pfd <= lim["f_pfd"][1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if lim["f_vco"][0] <= vco <= lim["f_vco"][1]:
                outs |= {vco / 2 ** q for q in range(1, 7)
                         if lim["f_out"][0] <= vco / 2 ** q <= lim["f_out"][1]}
    return outs


def ecp5_outputs(f_in):
    """Every output frequency an ECP5 PLL makes from ``f_in`` (independent enumeration)."""
    outs = set()
    for clki in range(1, 129):
        pfd = Fraction(f_in) / clki
        if pfd < Fraction(3125, 1000) * MHZ:
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            if 10 * MHZ <= out <= 400 * MHZ and any(
                    400 * MHZ <= out * d <= 800 * MHZ for d in range(1, 129)):
                outs.add(out)
    return outs


def check_ranges(cfg):
    """Every documented range holds for ``cfg`` and its frequencies are consistent."""
    p = cfg.params
    if cfg.family == "ice40":
        lim = ICE40_LIMITS
        assert cfg.f_pfd == cfg.f_in / (p["DIVR"] + 1)
        assert cfg.f_vco == cfg.f_pfd * (p["DIVF"] + 1)
        assert cfg.f_out == cfg.f_vco / 2 ** p["DIVQ"]
        assert p["FILTER_RANGE"] == ice40_filter_range(cfg.f_pfd)
        assert 1 <= p["FILTER_RANGE"] <= 6
        names = ("DIVR", "DIVF", "DIVQ")
    else:
        lim = ECP5_LIMITS
        assert cfg.f_pfd == cfg.f_in / p["CLKI_DIV"]
        assert cfg.f_out == cfg.f_pfd * p["CLKFB_DIV"]
        assert cfg.f_vco == cfg.f_out * p["CLKOP_DIV"]
        assert p["CLKOP_CPHASE"] == p["CLKOP_DIV"] // 2
        names = ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV")
    for name in names:
        assert lim[name][0] <= p[name] <= lim[name][1], name
    for name in ("f_pfd", "f_vco", "f_out"):
        lo, hi = lim[name]
        assert Fraction(lo) * MHZ <= getattr(cfg, name) <= Fraction(hi) * MHZ, name


@pytest.mark.parametrize(("family", "f_in", "outputs"), [
    ("ice40", 12 * MHZ, ice40_outputs), ("ice40", 100 * MHZ, ice40_outputs),
    ("ecp5", 25 * MHZ, ecp5_outputs), ("ecp5", 12 * MHZ, ecp5_outputs),
])
def test_at_most_search_gives_the_highest_frequency_not_above_the_request(family, f_in,
                                                                           outputs):
    achievable = outputs(f_in)
    lo, hi = (ICE40_LIMITS if family == "ice40" else ECP5_LIMITS)["f_out"]
    for request in range(lo * MHZ + 1, hi * MHZ, 4_973_000):      # a sweep over the range
        below = [f for f in achievable if f <= request]
        if not below:
            with pytest.raises(BnnflowError, match=r"PLL cannot make [\d.]+ MHz or less"):
                pll_for(family, f_in, request)
            continue
        cfg = pll_for(family, f_in, request)
        assert cfg.f_out == max(below)
        check_ranges(cfg)


@settings(max_examples=25, deadline=None, database=None)
@given(family=st.sampled_from(["ice40", "ecp5"]),
       f_in=st.integers(12, 100).map(lambda m: m * MHZ),
       f_out=st.floats(16, 275))
def test_every_setting_respects_the_documented_ranges(family, f_in, f_out):
    for at_most in (True, False):
        try:
            cfg = pll_for(family, f_in, f_out * MHZ, at_most=at_most)
        except BnnflowError:
            assert at_most
            continue
        check_ranges(cfg)
        if at_most:
            assert cfg.f_out <= Fraction(f_out * MHZ)


def test_results_describe_themselves_in_mhz():
    cfg = ice40_pll(12 * MHZ, 25 * MHZ, primitive="SB_PLL40_PAD")
    assert cfg.as_dict() == {
        "primitive": "SB_PLL40_PAD", "input_mhz": 12.0, "requested_mhz": 25.0,
        "achieved_mhz": 24.75, "pfd_mhz": 12.0, "vco_mhz": 792.0,
        "params": {"FEEDBACK_PATH": "SIMPLE", "DIVR": 0, "DIVF": 65, "DIVQ": 5,
                   "FILTER_RANGE": 1}}


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ice40_pll(12 * MHZ, 2000 * MHZ),
     "the ice40 PLL cannot make 2000 MHz: its output range is 16-275 MHz; choose another "
     "--clock"),
    (lambda: ice40_pll(12 * MHZ, 16 * MHZ),
     "the ice40 PLL cannot make 16 MHz or less from 12 MHz; choose another --clock"),
    (lambda: ecp5_pll(25 * MHZ, 5 * MHZ),
     "the ecp5 PLL cannot make 5 MHz: its output range is 10-400 MHz; choose another --clock"),
    (lambda: ice40_pll(5 * MHZ, 48 * MHZ), "the ice40 PLL takes a 10-133 MHz input, not 5 MHz"),
])
def test_unreachable_frequencies_are_one_line_errors(call, message):
    with pytest.raises(BnnflowError, match="^" + re.escape(message) + "$"):
        call()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ice40_pll(12 * MHZ, 0), "f_out must be a positive frequency in Hz, not 0"),
    (lambda: ice40_pll(12 * MHZ, 48 * MHZ, primitive="SB_PLL40_2F_PAD"),
     "primitive must be one of SB_PLL40_PAD, SB_PLL40_CORE, not 'SB_PLL40_2F_PAD'"),
    (lambda: pll_for("gowin", 12 * MHZ, 48 * MHZ),
     "family must be 'ice40' or 'ecp5', not 'gowin'"),
])
def test_bad_parameters_are_value_errors(call, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        call()
