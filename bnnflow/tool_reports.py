"""What the tools reported: Yosys' cell counts, nextpnr's report and nextpnr's log.

The one place that reads what Yosys and nextpnr leave behind, for
:mod:`bnnflow.boards.synth`, :mod:`bnnflow.boards.build` and ``python -m bnnflow.hw.bench``.
It sits beside :mod:`bnnflow.fileio`, below the layers, because ``hw/`` may not import
``boards/`` (imports point model <- hw <- sim/boards) and the bench script in ``hw/`` reads the
same reports; it needs nothing but the standard library.

* Yosys ``stat -json`` (:func:`read_stat`, :func:`cell_counts`): :class:`CellCounts`, the
  LUT4, flip-flops, carry cells, block RAMs, SPRAMs and LUT RAMs of a family, the logic measure
  (:attr:`CellCounts.logic`) and every cell type without Yosys' internal ``$`` cells
  (:func:`device_cells`);
* nextpnr's ``--report`` JSON (:func:`read_pnr_report`, :func:`pnr_report`):
  :class:`PnrReport`, the Fmax of each clock, the lowest of them and the cells used and
  available per type;
* nextpnr's log text: the logic cells its placer wanted (:func:`placed_logic`), a missed clock
  (:func:`timing_failure`) and a design it could not place (:func:`unplaceable`).

These readers only read: what a count means for a device (the logic cells it needs, whether
it fits) is the business of :mod:`bnnflow.boards.estimate` and :mod:`bnnflow.boards.fit`.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CellCounts", "PnrReport", "Usage", "TimingFailure", "cell_counts", "device_cells",
           "read_stat", "pnr_report", "read_pnr_report", "placed_logic", "timing_failure",
           "unplaceable", "PNR_CELLS", "UNPLACEABLE", "ECP5_COMB_PER_CARRY",
           "ECP5_COMB_PER_LUTRAM"]

# Yosys cell types counted in each field, per family (flip-flops: every type with the prefix,
# whatever its enable and reset flavour).
_YOSYS_CELLS = {
    "ice40": {"lut4": ("SB_LUT4",), "carry": ("SB_CARRY",), "bram": ("SB_RAM40_4K",),
              "spram": ("SB_SPRAM256KA",), "lutram": (), "ff_prefix": "SB_DFF"},
    "ecp5": {"lut4": ("LUT4",), "carry": ("CCU2C",), "bram": ("DP16KD",), "spram": (),
             "lutram": ("TRELLIS_DPR16X4",), "ff_prefix": "TRELLIS_FF"},
}

#: nextpnr-ecp5's ``TRELLIS_COMB`` cells per Yosys cell beside its LUT4: a ``CCU2C`` carry
#: cell and a ``TRELLIS_DPR16X4`` LUT RAM. Measured 2026-12-06 with ``nextpnr-ecp5
#: --pack-only`` on 12 designs (MLPs and conv nets of every kind, 906 to 18,195 cells):
#: ``TRELLIS_COMB = LUT4 + 3.2 CCU2C + 6 DPR16X4`` within 21 cells on each (bench/README.md,
#: "LUT4 of an MVTU, refitted; what a Yosys count takes on the device"). Two per carry cell
#: alone undercounted by 3 to 9 %, and LUT RAM was not counted at all.
ECP5_COMB_PER_CARRY = 3.2
ECP5_COMB_PER_LUTRAM = 6

# Yosys names the cells it makes for itself with a "$" (``$scopeinfo`` records Amaranth's
# hierarchy after flattening); they take nothing on the device.
_INTERNAL_PREFIX = "$"

#: nextpnr's cell type behind each utilization figure (``logic``, ``ff``, ``bram``, ``io``),
#: per family. An iCE40 logic cell holds a LUT4 and a flip-flop, so both figures count
#: ``ICESTORM_LC``.
PNR_CELLS = {
    "ice40": {"logic": "ICESTORM_LC", "ff": "ICESTORM_LC", "bram": "ICESTORM_RAM",
              "io": "SB_IO"},
    "ecp5": {"logic": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD", "io": "TRELLIS_IO"},
}

#: nextpnr log lines that mean the design did not fit.
UNPLACEABLE = ("Unable to place", "no BELs remaining", "Unable to find legal placement",
               "too many")


def device_cells(by_type):
    """``by_type`` (Yosys' cell counts by type) without Yosys' internal ``$`` cells."""
    return {name: n for name, n in by_type.items() if not name.startswith(_INTERNAL_PREFIX)}


@dataclass(frozen=True)
class CellCounts:
    """Yosys' cell counts of one design, in the fields the reports use.

    Attributes
    ----------
    family : str
        ``"ice40"`` or ``"ecp5"``.
    lut4, ff, carry, bram, spram : int
        LUT4 cells, flip-flops, carry cells (``SB_CARRY`` / ``CCU2C``), block RAMs, SPRAMs.
    by_type : dict
        Every cell type and its count, without Yosys' internal ``$`` cells.
    lutram : int
        ECP5 LUT RAM cells (``TRELLIS_DPR16X4``; 0 on iCE40).
    """

    family: str
    lut4: int
    ff: int
    carry: int
    bram: int
    spram: int
    by_type: dict = field(default_factory=dict)
    lutram: int = 0

    @property
    def logic(self):
        """LUT4 as the device's logic cells hold them. iCE40: ``lut4`` (an ``SB_CARRY`` sits
        beside a LUT4 in its cell). ECP5: nextpnr's ``TRELLIS_COMB`` cells, ``lut4 + 3.2 carry
        + 6 lutram`` rounded (:data:`ECP5_COMB_PER_CARRY`, :data:`ECP5_COMB_PER_LUTRAM`)."""
        if self.family != "ecp5":
            return self.lut4
        return round(self.lut4 + ECP5_COMB_PER_CARRY * self.carry
                     + ECP5_COMB_PER_LUTRAM * self.lutram)

    def as_dict(self):
        """``{"lut4", "carry", "bram", "spram", "ff"}``: the ``resources`` of ``build.json``
        (in this key order, which the file has always had)."""
        return {"lut4": self.lut4, "carry": self.carry, "bram": self.bram, "spram": self.spram,
                "ff": self.ff}


def cell_counts(family, by_type):
    """:class:`CellCounts` of ``family`` from Yosys' cell counts by type.

    Parameters
    ----------
    family : str
        ``"ice40"`` or ``"ecp5"``.
    by_type : mapping
        ``num_cells_by_type`` of Yosys' ``stat -json``.
    """
    spec = _YOSYS_CELLS[family]
    cells = device_cells(by_type)

    def total(key):
        return sum(cells.get(name, 0) for name in spec[key])

    return CellCounts(
        family=family, lut4=total("lut4"), carry=total("carry"), bram=total("bram"),
        spram=total("spram"),
        ff=sum(n for name, n in cells.items() if name.startswith(spec["ff_prefix"])),
        by_type=cells, lutram=total("lutram"))


def read_stat(path, family):
    """:class:`CellCounts` of the whole design from the file Yosys' ``stat -json`` wrote
    (``tee -q -o stat.json stat -json``)."""
    stat = json.loads(Path(path).read_text(encoding="utf-8"))
    return cell_counts(family, stat["design"]["num_cells_by_type"])


@dataclass(frozen=True)
class Usage:
    """Cells of one nextpnr type: ``used`` of ``available`` (0 of 0 when not reported)."""

    used: int = 0
    available: int = 0


@dataclass(frozen=True)
class PnrReport:
    """nextpnr's ``--report`` JSON.

    Attributes
    ----------
    fmax_by_clock : dict
        MHz achieved per clock (a clock reported without an achieved frequency is left out).
    cells : dict
        :class:`Usage` per nextpnr cell type.
    """

    fmax_by_clock: dict = field(default_factory=dict)
    cells: dict = field(default_factory=dict)

    @property
    def fmax_mhz(self):
        """The slowest clock's Fmax in MHz (2 decimals), ``None`` when no clock was
        reported."""
        return round(min(self.fmax_by_clock.values()), 2) if self.fmax_by_clock else None

    def usage(self, family, what):
        """:class:`Usage` behind the ``what`` figure (``"logic"``, ``"ff"``, ``"bram"``,
        ``"io"``) of :data:`PNR_CELLS` on ``family``."""
        return self.cells.get(PNR_CELLS[family][what], Usage())


def pnr_report(data):
    """:class:`PnrReport` of nextpnr's report ``data`` (the parsed JSON)."""
    return PnrReport(
        fmax_by_clock={clock: c["achieved"] for clock, c in data.get("fmax", {}).items()
                       if "achieved" in c},
        cells={cell: Usage(u.get("used", 0), u.get("available", 0))
               for cell, u in data.get("utilization", {}).items()})


def read_pnr_report(path):
    """:class:`PnrReport` of the file nextpnr's ``--report`` wrote."""
    return pnr_report(json.loads(Path(path).read_text(encoding="utf-8")))


def placed_logic(log_text, family):
    """Logic cells nextpnr wanted, from the last utilization line of the family's logic cell
    type in its log (``ICESTORM_LC:    6199/   5280``), or ``None``."""
    cell = PNR_CELLS[family]["logic"]
    found = re.findall(rf"{cell}:\s*(\d+)/\s*(\d+)", log_text)
    return int(found[-1][0]) if found else None


@dataclass(frozen=True)
class TimingFailure:
    """A clock nextpnr missed: its name, the MHz reached and the MHz asked for."""

    clock: str
    reached_mhz: float
    wanted_mhz: float


def timing_failure(log_text):
    """The last clock nextpnr's log reports as missed
    (``Max frequency for clock 'clk': 9.87 MHz (FAIL at 12.00 MHz)``), or ``None``."""
    found = re.findall(r"Max frequency for clock\s+'([^']*)':\s*([\d.]+) MHz \(FAIL at "
                       r"([\d.]+) MHz\)", log_text)
    if not found:
        return None
    clock, reached, wanted = found[-1]
    return TimingFailure(clock, float(reached), float(wanted))


def unplaceable(log_text):
    """Whether nextpnr's log says the design did not fit (one of :data:`UNPLACEABLE`)."""
    return any(marker in log_text for marker in UNPLACEABLE)
