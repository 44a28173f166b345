"""Thin I/O wrapper for out-of-context synthesis: a wide stream on a handful of pins.

A network's input (``K0`` bits) and output (class + popcounts) are far wider than any package
(a 256-bit stream fits none), so synthesis reports are taken on this wrapper::

    sin ---> [K0-bit shift register] --(start)--> BnnTop --> [output register] ---> sout
             shift_in strobe                      o.ready = 1    out_shift strobe

* ``shift_in`` high: the input register shifts by one, ``sin`` entering at the top, so after
  ``K0`` shifts the first bit sent is input bit 0.
* ``start`` high: the register's contents are offered to the network (``i.valid`` held until
  the transfer); ``busy`` is high while it waits.
* Every network output is captured into a ``W_out``-bit output register (``o.ready`` is always
  high) and ``done`` rises; ``out_shift`` shifts it down by one, ``sout`` being bit 0, and
  clears ``done``.

Every input and output bit of the network stays observable, so synthesis removes nothing, and
the wrapper adds ``2 K0 + W_out + 2`` flip-flops (the shift register, the network's input
register, the output register, two flags) and about ``K0 + W_out`` LUTs (muxes of the shift
registers) to the network's figures. It is a measuring fixture, not a usable interface.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..hw.top import BnnTop

__all__ = ["SynthWrapper", "WRAPPER_NOTE"]

WRAPPER_NOTE = ("out-of-context I/O wrapper: K0-bit input shift register (sin, shift_in, "
                "start, busy) and W_out-bit output shift register (sout, out_shift, done); adds "
                "2 K0 + W_out + 2 flip-flops (shift register, network input register, output "
                "register, flags) and their shift muxes to the network")


class SynthWrapper(wiring.Component):
    """A :class:`~bnnflow.hw.top.BnnTop` with serial input and output (see module docstring).

    Parameters
    ----------
    bnn : BnnTop

    Members
    -------
    sin : In(1)
    shift_in : In(1)
    start : In(1)
    busy : Out(1)
    sout : Out(1)
    out_shift : In(1)
    done : Out(1)
    """

    sin: In(1)
    shift_in: In(1)
    start: In(1)
    busy: Out(1)
    sout: Out(1)
    out_shift: In(1)
    done: Out(1)

    def __init__(self, bnn):
        if not isinstance(bnn, BnnTop):
            raise TypeError(f"bnn must be a BnnTop, not {bnn!r}")
        self.bnn = bnn
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bnn = bnn = self.bnn
        k0 = len(bnn.i.payload)
        w_out = len(bnn.o.payload)

        shreg = Signal(k0)
        with m.If(self.shift_in):
            m.d.sync += shreg.eq(Cat(shreg[1:], self.sin) if k0 > 1 else self.sin)
        with m.If(bnn.i.valid & bnn.i.ready):
            m.d.sync += bnn.i.valid.eq(0)
        with m.If(self.start & ~bnn.i.valid):
            m.d.sync += [bnn.i.payload.eq(shreg), bnn.i.valid.eq(1)]
        m.d.comb += self.busy.eq(bnn.i.valid)

        out = Signal(w_out)
        m.d.comb += [bnn.o.ready.eq(1), self.sout.eq(out[0])]
        with m.If(bnn.o.valid):
            m.d.sync += [out.eq(bnn.o.payload), self.done.eq(1)]
        with m.Elif(self.out_shift):
            m.d.sync += [out.eq(out >> 1), self.done.eq(0)]
        return m
