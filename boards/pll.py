"""PLL parameter search for iCE40 (``SB_PLL40_*``) and ECP5 (``EHXPLLL``), in pure Python.

One function per family, each returning a :class:`PllConfig` (achieved frequency, primitive
parameters). Arithmetic is exact (:class:`fractions.Fraction` of Hz), so a request that a
divider setting reaches exactly is matched exactly.

iCE40, ``FEEDBACK_PATH="SIMPLE"`` (after IceStorm's ``icepll``)::

    f_pfd = f_in / (DIVR + 1)        10 MHz <= f_pfd <= 133 MHz,  DIVR in 0..15
    f_vco = f_pfd * (DIVF + 1)      533 MHz <= f_vco <= 1066 MHz, DIVF in 0..127
    f_out = f_vco / 2**DIVQ          16 MHz <= f_out <= 275 MHz,  DIVQ in 1..6
    FILTER_RANGE from f_pfd: < 17 MHz: 1, < 26: 2, < 44: 3, < 66: 4, < 101: 5, else 6

The input must be 10..133 MHz. ``SB_PLL40_PAD`` takes the clock straight from the PLL's own
package pin (the iCEBreaker's 12 MHz oscillator is on pin 35, the UP5K's PLL pad: with
``SB_PLL40_CORE`` fed from that pin nextpnr would need the pin's I/O site twice);
``SB_PLL40_CORE`` takes it from the fabric (any clock pin).

ECP5 ``EHXPLLL``, feedback from ``CLKOP`` (after Project Trellis' ``ecppll``)::

    f_pfd = f_in / CLKI_DIV           f_pfd >= 3.125 MHz,           CLKI_DIV in 1..128
    f_out = f_pfd * CLKFB_DIV         10 MHz <= f_out <= 400 MHz,   CLKFB_DIV in 1..80
    f_vco = f_out * CLKOP_DIV        400 MHz <= f_vco <= 800 MHz,   CLKOP_DIV in 1..128
    CLKOP_CPHASE = CLKOP_DIV // 2 (ecppll's 180 degree shift), CLKOP_FPHASE = 0

The input must be 8..400 MHz. Among settings with the same output, ``CLKOP_DIV`` puts the VCO
nearest 600 MHz (first found on a tie), as ``ecppll`` does. (``ecppll`` computes the phase in
single-precision floats and truncates, so it may print one less for some dividers.)

Search modes: ``at_most=True`` (what ``bnnflow build`` uses) gives the highest achievable
frequency not above the request; ``at_most=False`` gives the nearest one, like the original
tools (same loop order, the first setting found wins a tie).
"""

from dataclasses import dataclass, field
from fractions import Fraction

from ..errors import BnnflowError

__all__ = ["PllConfig", "ICE40_LIMITS", "ECP5_LIMITS", "ice40_pll", "ecp5_pll", "pll_for",
           "ice40_filter_range", "ICE40_PRIMITIVES"]

MHZ = 1_000_000

#: Ranges (MHz) of the iCE40 PLL in SIMPLE feedback mode.
ICE40_LIMITS = {"f_in": (10, 133), "f_pfd": (10, 133), "f_vco": (533, 1066),
                "f_out": (16, 275), "DIVR": (0, 15), "DIVF": (0, 127), "DIVQ": (1, 6)}
#: Ranges (MHz) of the ECP5 EHXPLLL with CLKOP feedback.
ECP5_LIMITS = {"f_in": (8, 400), "f_pfd": (3.125, 400), "f_vco": (400, 800),
               "f_out": (10, 400), "CLKI_DIV": (1, 128), "CLKFB_DIV": (1, 80),
               "CLKOP_DIV": (1, 128)}
ICE40_PRIMITIVES = ("SB_PLL40_PAD", "SB_PLL40_CORE")


@dataclass(frozen=True)
class PllConfig:
    """One PLL setting.

    Attributes
    ----------
    family : str
        ``ice40`` or ``ecp5``.
    primitive : str
        ``SB_PLL40_PAD``, ``SB_PLL40_CORE`` or ``EHXPLLL``.
    f_in, f_out, f_pfd, f_vco : Fraction
        Input, achieved output, phase detector and VCO frequencies in Hz.
    requested : Fraction
        The frequency asked for, in Hz.
    params : dict
        The primitive's parameters (names as in the primitive, integers or strings).
    """

    family: str
    primitive: str
    f_in: Fraction
    f_out: Fraction
    f_pfd: Fraction
    f_vco: Fraction
    requested: Fraction
    params: dict = field(hash=False)

    @property
    def f_out_hz(self):
        """Achieved output frequency in Hz, as a float."""
        return float(self.f_out)

    def as_dict(self):
        """A JSON-ready description (frequencies in MHz, rounded to 1 Hz)."""
        return {
            "primitive": self.primitive,
            "input_mhz": round(float(self.f_in) / MHZ, 6),
            "requested_mhz": round(float(self.requested) / MHZ, 6),
            "achieved_mhz": round(float(self.f_out) / MHZ, 6),
            "pfd_mhz": round(float(self.f_pfd) / MHZ, 6),
            "vco_mhz": round(float(self.f_vco) / MHZ, 6),
            "params": dict(self.params),
        }


def _hz(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)) or value <= 0:
        raise ValueError(f"{name} must be a positive frequency in Hz, not {value!r}")
    return Fraction(value)


def _in_range(value, limits):
    lo, hi = limits
    return Fraction(lo) * MHZ <= value <= Fraction(hi) * MHZ


def _mhz(value):
    return f"{float(value) / MHZ:g} MHz"


def _check_request(family, f_in, want, limits):
    if not _in_range(f_in, limits["f_in"]):
        lo, hi = limits["f_in"]
        raise BnnflowError(f"the {family} PLL takes a {lo}-{hi} MHz input, not {_mhz(f_in)}")
    if not _in_range(want, limits["f_out"]):
        lo, hi = limits["f_out"]
        raise BnnflowError(f"the {family} PLL cannot make {_mhz(want)}: its output range is "
                           f"{lo}-{hi} MHz; choose another --clock")


def _unreachable(family, f_in, request):
    return BnnflowError(f"the {family} PLL cannot make {_mhz(request)} or less from "
                        f"{_mhz(f_in)}; choose another --clock")


def ice40_filter_range(f_pfd):
    """``FILTER_RANGE`` for a phase detector frequency ``f_pfd`` in Hz (as ``icepll``)."""
    for limit, value in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
        if f_pfd < limit * MHZ:
            return value
    return 6


def ice40_pll(f_in, f_out, *, at_most=True, primitive="SB_PLL40_CORE"):
    """iCE40 PLL setting (SIMPLE feedback) for ``f_out`` Hz from ``f_in`` Hz.

    Parameters
    ----------
    f_in, f_out : int, float or Fraction
        Input and requested output frequency in Hz.
    at_most : bool
        True: the highest achievable frequency ``<= f_out``; False: the nearest (``icepll``).
    primitive : str
        ``SB_PLL40_PAD`` or ``SB_PLL40_CORE`` (recorded in the result; same parameters).

    Returns
    -------
    PllConfig
        ``params``: ``FEEDBACK_PATH``, ``DIVR``, ``DIVF``, ``DIVQ``, ``FILTER_RANGE``.

    Raises
    ------
    ValueError
        A frequency that is not positive, an unknown primitive.
    BnnflowError
        An input outside 10-133 MHz, a request outside the 16-275 MHz output range, or no
        setting at most ``f_out`` (``at_most``).
    """
    f_in, want = _hz(f_in, "f_in"), _hz(f_out, "f_out")
    if primitive not in ICE40_PRIMITIVES:
        raise ValueError(f"primitive must be one of {', '.join(ICE40_PRIMITIVES)}, "
                         f"not {primitive!r}")
    lim = ICE40_LIMITS
    _check_request("ice40", f_in, want, lim)
    best = None
    for divr in range(lim["DIVR"][0], lim["DIVR"][1] + 1):
        f_pfd = f_in / (divr + 1)
        if not _in_range(f_pfd, lim["f_pfd"]):
            continue
        # DIVF values that keep the VCO in range, in increasing order (icepll's loop).
        vco_lo, vco_hi = (Fraction(v) * MHZ for v in lim["f_vco"])
        first = max(lim["DIVF"][0], -(-vco_lo // f_pfd) - 1)
        last = min(lim["DIVF"][1], vco_hi // f_pfd - 1)
        for divf in range(int(first), int(last) + 1):
            f_vco = f_pfd * (divf + 1)
            for divq in range(lim["DIVQ"][0], lim["DIVQ"][1] + 1):
                out = f_vco / 2 ** divq
                if not _in_range(out, lim["f_out"]) or (at_most and out > want):
                    continue
                if (best is None
                        or (at_most and out > best[0])
                        or (not at_most and abs(out - want) < abs(best[0] - want))):
                    best = (out, divr, divf, divq, f_pfd, f_vco)
    if best is None:
        raise _unreachable("ice40", f_in, want)
    out, divr, divf, divq, f_pfd, f_vco = best
    params = {"FEEDBACK_PATH": "SIMPLE", "DIVR": divr, "DIVF": divf, "DIVQ": divq,
              "FILTER_RANGE": ice40_filter_range(f_pfd)}
    return PllConfig("ice40", primitive, f_in, out, f_pfd, f_vco, want, params)


def ecp5_pll(f_in, f_out, *, at_most=True):
    """ECP5 ``EHXPLLL`` setting (feedback from CLKOP) for ``f_out`` Hz from ``f_in`` Hz.

    Parameters
    ----------
    f_in, f_out : int, float or Fraction
        Input and requested output frequency in Hz.
    at_most : bool
        True: the highest achievable frequency ``<= f_out``; False: the nearest (``ecppll``).

    Returns
    -------
    PllConfig
        ``params``: ``CLKI_DIV``, ``CLKFB_DIV``, ``CLKOP_DIV``, ``CLKOP_CPHASE``,
        ``CLKOP_FPHASE``, ``FEEDBK_PATH``.

    Raises
    ------
    ValueError
        A frequency that is not positive.
    BnnflowError
        An input outside 8-400 MHz, a request outside the 10-400 MHz output range, or no
        setting at most ``f_out`` (``at_most``).
    """
    f_in, want = _hz(f_in, "f_in"), _hz(f_out, "f_out")
    lim = ECP5_LIMITS
    _check_request("ecp5", f_in, want, lim)
    vco_lo, vco_hi = (Fraction(v) * MHZ for v in lim["f_vco"])
    centre = 600 * MHZ
    best = None
    for clki in range(lim["CLKI_DIV"][0], lim["CLKI_DIV"][1] + 1):
        f_pfd = f_in / clki
        if not _in_range(f_pfd, lim["f_pfd"]):
            continue
        for clkfb in range(lim["CLKFB_DIV"][0], lim["CLKFB_DIV"][1] + 1):
            out = f_pfd * clkfb
            if not _in_range(out, lim["f_out"]) or (at_most and out > want):
                continue
            # Output dividers that keep the VCO in range; the one nearest 600 MHz, first on a
            # tie (ecppll's inner loop).
            first = max(lim["CLKOP_DIV"][0], -(-vco_lo // out))
            last = min(lim["CLKOP_DIV"][1], vco_hi // out)
            if first > last:
                continue
            clkop = min(range(int(first), int(last) + 1), key=lambda d: abs(out * d - centre))
            f_vco = out * clkop
            if best is not None:
                if at_most:
                    better = out > best[0] or (out == best[0]
                                               and abs(f_vco - centre) < abs(best[4] - centre))
                else:
                    err, best_err = abs(out - want), abs(best[0] - want)
                    better = err < best_err or (err == best_err
                                                and abs(f_vco - centre) < abs(best[4] - centre))
                if not better:
                    continue
            best = (out, clki, clkfb, clkop, f_vco, f_pfd)
    if best is None:
        raise _unreachable("ecp5", f_in, want)
    out, clki, clkfb, clkop, f_vco, f_pfd = best
    params = {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
              "CLKOP_CPHASE": clkop // 2, "CLKOP_FPHASE": 0, "FEEDBK_PATH": "CLKOP"}
    return PllConfig("ecp5", "EHXPLLL", f_in, out, f_pfd, f_vco, want, params)


def pll_for(family, f_in, f_out, *, at_most=True, primitive=None):
    """The PLL setting of ``family`` (``ice40`` or ``ecp5``); see :func:`ice40_pll`."""
    if family == "ice40":
        return ice40_pll(f_in, f_out, at_most=at_most, primitive=primitive or "SB_PLL40_CORE")
    if family == "ecp5":
        return ecp5_pll(f_in, f_out, at_most=at_most)
    raise ValueError(f"family must be 'ice40' or 'ecp5', not {family!r}")
