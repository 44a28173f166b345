"""Supported boards: amaranth-boards platforms with a UART, and their FPGA targets.

Kept free of Amaranth imports so that ``bnnflow --help`` stays fast; the platform class is
imported only by :meth:`Board.make_platform`.
"""

from dataclasses import dataclass

from ..errors import BnnflowError

__all__ = ["Board", "BOARDS", "get_board"]


@dataclass(frozen=True)
class Board:
    """A supported board.

    Attributes
    ----------
    name : str
    module, platform : str
        ``amaranth_boards`` module and platform class.
    target : str
        The matching :data:`bnnflow.boards.targets.TARGETS` entry (capacities, family).
    leds : int
        LEDs to use (``led`` resources 0..leds-1).
    port_hint : str
        Where the UART shows up on the host.
    pll : str
        PLL primitive for ``--clock``: ``SB_PLL40_PAD`` when the oscillator is on the iCE40
        PLL's own pad, ``SB_PLL40_CORE`` when it is on another pin, ``EHXPLLL`` on ECP5.
    """

    name: str
    module: str
    platform: str
    target: str
    leds: int
    port_hint: str
    pll: str

    def make_platform(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.platform)()


BOARDS = {b.name: b for b in (
    # The iCEBreaker's 12 MHz oscillator is on pin 35, the UP5K PLL's package pin.
    Board("icebreaker", "amaranth_boards.icebreaker", "ICEBreakerPlatform", "ice40-up5k", 2,
          "the second FTDI channel, e.g. /dev/ttyUSB1", "SB_PLL40_PAD"),
    Board("ice40-hx8k-evn", "amaranth_boards.ice40_hx8k_b_evn", "ICE40HX8KBEVNPlatform",
          "ice40-hx8k", 3, "the second FTDI channel, e.g. /dev/ttyUSB1", "SB_PLL40_CORE"),
    Board("ulx3s", "amaranth_boards.ulx3s", "ULX3S_85F_Platform", "ecp5-85k", 3,
          "the FTDI UART, e.g. /dev/ttyUSB0", "EHXPLLL"),
    # The Colorlight's UART uses the LED pin for tx, so no LEDs there.
    Board("colorlight-5a75b", "amaranth_boards.colorlight_5a75b_r7_0",
          "Colorlight_5A75B_R70Platform", "ecp5-25k", 0,
          "a USB-serial adapter on J19 (tx = DATA_LED-, rx = KEY+)", "EHXPLLL"),
)}


def get_board(name):
    """The :class:`Board` called ``name``; :class:`BnnflowError` listing the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise BnnflowError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None
