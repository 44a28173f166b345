"""FPGA targets for out-of-context synthesis: devices, packages, capacities.

Capacities are the devices' datasheet figures, as nextpnr reports them: logic cells (one LUT4
and one flip-flop each), block RAMs (iCE40: 4 kbit ``SB_RAM40_4K``; ECP5: 18 kbit ``DP16KD``)
and, on the UP5K, four 256 kbit single-port RAMs (``SB_SPRAM256KA``).
"""

import math
from dataclasses import dataclass

from ..errors import BnnflowError

__all__ = ["Target", "TARGETS", "get_target", "rom_blocks"]


@dataclass(frozen=True)
class Target:
    """One device in one package.

    Attributes
    ----------
    name : str
        ``ice40-up5k``, ``ice40-hx8k``, ``ecp5-25k``, ``ecp5-85k``.
    family : str
        ``ice40`` or ``ecp5`` (selects ``synth_<family>`` and ``nextpnr-<family>``).
    nextpnr_args : tuple of str
        Device and package options of nextpnr.
    lut4 : int
        Logic cells (LUT4 + flip-flop).
    bram : int
        Block RAMs.
    bram_bits : int
        Bits per block RAM.
    spram : int
        256 kbit single-port RAMs (UP5K only).
    freq_mhz : float
        Clock constraint given to nextpnr (a target to report against; the report's Fmax is
        what the placed design reaches).
    clock_pin : str or None
        Package pin the ``clk`` port is locked to (ECP5: a dedicated clock input, the one the
        amaranth-boards boards of that package use), so that nextpnr reaches the global clock
        network from a clock pad, not through fabric routing from wherever it placed the pad
        (the sfc at II 64 on the 85k failed with "Failed to route arc 0.0 of net
        'clk$TRELLIS_IO_IN'" from an ordinary pad). ``None``: nextpnr places it (iCE40).
    """

    name: str
    family: str
    nextpnr_args: tuple
    lut4: int
    bram: int
    bram_bits: int
    spram: int
    freq_mhz: float
    clock_pin: str | None = None


TARGETS = {t.name: t for t in (
    Target("ice40-up5k", "ice40", ("--up5k", "--package", "sg48"), 5280, 30, 4096, 4, 24.0),
    Target("ice40-hx8k", "ice40", ("--hx8k", "--package", "ct256"), 7680, 32, 4096, 0, 48.0),
    # Clock pins: P6 is clk25 of the Colorlight 5A-75B and the iCESugar-Pro (CABGA256), G2 of
    # the ULX3S (CABGA381), in amaranth-boards.
    Target("ecp5-25k", "ecp5", ("--25k", "--package", "CABGA256"), 24288, 56, 18432, 0, 48.0,
           "P6"),
    Target("ecp5-85k", "ecp5", ("--85k", "--package", "CABGA381"), 83640, 208, 18432, 0, 48.0,
           "G2"),
)}

# (depth, width) configurations of one block RAM.
_BRAM_SHAPES = {
    "ice40": [(256, 16), (512, 8), (1024, 4), (2048, 2)],
    "ecp5": [(512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)],
}


def get_target(name):
    """The :class:`Target` called ``name``; :class:`BnnflowError` listing the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise BnnflowError(f"unknown target {name!r}; choose one of "
                           f"{', '.join(TARGETS)}") from None


def rom_blocks(family, width, depth):
    """Block RAMs a ``width x depth`` ROM takes at best (the cheapest RAM configuration)."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in _BRAM_SHAPES[family])
