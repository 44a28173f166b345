# amaranth: UnusedElaboratable=no
"""Proofs on what reaches the board: the whole network as Yosys' mapped netlist.

``bnnflow prove`` checks the Amaranth design; ``verify --netlist`` simulates Yosys' netlist of
it for some inputs and stall patterns. :func:`netlist_target` gives the network's proof target
(:func:`bnnflow.sim.prove.proof_targets`) a netlist in place of its design: ``synth_ice40`` or
``synth_ecp5`` maps the same :class:`~bnnflow.hw.top.BnnTop` (:func:`~bnnflow.sim.netlist.
mapped_netlist`), :class:`NetlistInstance` instantiates it inside the same harness, and Yosys
reads it with the family's cell models (:func:`~bnnflow.sim.netlist.cell_models`, LUTs, carry
chains, flip-flops and block RAM with their ``INIT`` contents). The properties, the golden
reference and the depth rule are the RTL proof's, so hold, order and reference are checked for
every input and every stall pattern on the LUTs and flip-flops Yosys placed, to the depth
given. Units are not proven one by one here: the netlist is flattened, so there are none.
"""

from dataclasses import replace

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .backend import TOP_NAME
from .netlist import FAMILIES, cell_models, mapped_netlist

__all__ = ["NetlistInstance", "netlist_target"]


class NetlistInstance(wiring.Component):
    """The module :data:`~bnnflow.sim.backend.TOP_NAME` of a netlist, as a stream component.

    Parameters
    ----------
    in_width, out_width : int
        The network's input and output payload widths.

    Members
    -------
    i : In(stream.Signature(in_width))
    o : Out(stream.Signature(out_width))
        The netlist's ports ``i__valid`` ... ``o__payload`` (Amaranth's names for the
        network's streams), its ``clk`` and ``rst`` on the domain ``sync``.
    """

    def __init__(self, in_width, out_width):
        super().__init__({"i": In(stream.Signature(in_width)),
                          "o": Out(stream.Signature(out_width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.netlist = Instance(
            TOP_NAME, i_clk=ClockSignal(), i_rst=ResetSignal(),
            i_i__valid=self.i.valid, o_i__ready=self.i.ready, i_i__payload=self.i.payload,
            o_o__valid=self.o.valid, i_o__ready=self.o.ready, o_o__payload=self.o.payload)
        return m


def netlist_target(target, family):
    """``target`` (the ``"network"`` target of :func:`~bnnflow.sim.prove.proof_targets`) with
    Yosys' ``synth_<family>`` netlist of its design as the design under test.

    Raises
    ------
    ValueError
        A family other than :data:`~bnnflow.sim.netlist.FAMILIES`.
    ToolError
        Yosys failed.
    """
    if family not in FAMILIES:
        raise ValueError(f"netlist family must be one of {', '.join(FAMILIES)}, not "
                         f"{family!r}")
    netlist = mapped_netlist(target.dut, family)
    return replace(target, name=f"{target.name} ({family} netlist)",
                   dut=NetlistInstance(target.in_width, target.out_width),
                   sources=cell_models(family) + "\n" + netlist)
