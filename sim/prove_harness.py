# amaranth: UnusedElaboratable=no
"""The property harness of a formal proof: a streaming unit, a free environment, three checks.

The solver drives the unit's input (``payload``, ``valid``) and its output ``ready`` freely,
under one assumption, the stream rule for the producer: a payload offered with ``valid`` and
not taken is offered again, unchanged, in the next cycle. Against that environment the
harness asserts, in every cycle:

* **hold**: the unit's own output obeys the same rule (an offered payload is held until it
  is taken);
* **order**: outputs never run ahead of inputs (image ``n``'s outputs only after image ``n``
  started), and none is lost: with complete images waiting and ``ready`` high, an output
  transfers within ``bound`` cycles;
* **reference**: every output of one image picked freely by the solver (``pick``, the
  arbitrary-transaction trick: proving it for an arbitrary image proves it for all) equals the
  combinational golden model (:mod:`bnnflow.sim.formal_ref`) of that image's inputs, recorded
  as they transfer. The outputs of images before it must have come out once each, or the
  picked image's outputs would be compared with a neighbour's.

An image is ``n_in`` input transfers (a vector in chunks, or a map's pixels) and ``n_out``
output transfers; chunk ``r`` carries bits ``[r*w, (r+1)*w)`` of the flattened vector (a short
last chunk is padded with zeros). Each check drives a ``fail_<name>`` signal and an
:class:`~amaranth.hdl.Assert` on its negation; a counterexample's trace shows which fired.
"""

from amaranth.hdl import Assert, Assume, Cat, Cover, Elaboratable, Module, Mux, ResetSignal, Signal

__all__ = ["StreamHarness", "PROPERTIES"]

#: The checks, in the order reports list them.
PROPERTIES = ("hold", "order", "reference")


class StreamHarness(Elaboratable):
    """A unit with stream ports ``i`` and ``o`` under the three checks.

    Parameters
    ----------
    dut : wiring.Component
        Members ``i: In(stream.Signature(a))`` and ``o: Out(stream.Signature(b))``.
    in_width, out_width : int
        Bits of one image's input and output vectors.
    reference : callable
        ``reference(bits) -> Value`` of ``out_width`` bits, from a list of ``in_width`` 1-bit
        values.
    bound : int
        Cycles within which a waiting complete image must give an output with ``ready`` high.
    capacity : int
        Most complete images the unit may hold (more fails *order*: images would be lost).
    properties : iterable of str
        Which of :data:`PROPERTIES` to assert.

    Members
    -------
    i_payload, i_valid, o_ready, pick : Signal
        The free environment (ports of the converted design).
    """

    def __init__(self, dut, in_width, out_width, reference, bound, capacity,
                 properties=PROPERTIES):
        unknown = set(properties) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"properties must be among {', '.join(PROPERTIES)}, not "
                             f"{sorted(unknown)}")
        self.dut, self.reference, self.bound = dut, reference, int(bound)
        self.properties = tuple(properties)
        self.in_chunk, self.out_chunk = len(dut.i.payload), len(dut.o.payload)
        self.in_width, self.out_width = int(in_width), int(out_width)
        self.n_in = -(-self.in_width // self.in_chunk)
        self.n_out = -(-self.out_width // self.out_chunk)
        self.cap = int(capacity)
        self.i_payload = Signal(self.in_chunk)
        self.i_valid = Signal()
        self.o_ready = Signal()
        self.pick = Signal()
        self.fail = {name: Signal(name=f"fail_{name}") for name in PROPERTIES}

    @property
    def ports(self):
        return [self.i_payload, self.i_valid, self.o_ready, self.pick]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += [dut.i.payload.eq(self.i_payload), dut.i.valid.eq(self.i_valid),
                     dut.o.ready.eq(self.o_ready), Assume(~ResetSignal())]
        self._producer_rule(m, dut.i, assume=True)
        in_fire = dut.i.valid & dut.i.ready
        out_fire = dut.o.valid & dut.o.ready
        in_k, in_done = self._chunks(m, in_fire, self.n_in, "in")
        out_k, out_done = self._chunks(m, out_fire, self.n_out, "out")
        # Complete input images not yet completely output: relative, so that no counter grows
        # with time (k-induction starts from arbitrary states of the harness too). -1 while an
        # image's outputs are out before its last inputs: a max-pool that drops the map's last
        # rows or columns does not wait for them.
        pending = Signal(range(-1, self.cap + 2), name="pending")
        m.d.sync += pending.eq(pending + in_done - out_done)
        m.d.comb += self.fail["hold"].eq(self._producer_rule(m, dut.o, assume=False))
        self._order(m, out_fire, in_k, pending)
        self._reference(m, in_fire, out_k, in_k, in_done, out_done, pending)
        for name in self.properties:
            m.d.comb += Assert(~self.fail[name], name)
        return m

    def _producer_rule(self, m, port, assume):
        """``valid`` and ``payload`` held after a cycle offered and not taken; returns the
        violation (``assume``: the environment may not violate it)."""
        stalled = Signal(name=f"{'env' if assume else 'dut'}_stalled")
        held = Signal(len(port.payload), name=f"{'env' if assume else 'dut'}_held")
        m.d.sync += [stalled.eq(port.valid & ~port.ready), held.eq(port.payload)]
        broken = stalled & ~(port.valid & (port.payload == held))
        if assume:
            m.d.comb += Assume(~broken)
        return broken

    def _chunks(self, m, fire, per_image, name):
        """Transfers within the current image, and the image's last transfer."""
        k = Signal(range(max(per_image, 2)), name=f"{name}_chunk")
        last = fire & (k == per_image - 1)
        with m.If(fire):
            m.d.sync += k.eq(Mux(k == per_image - 1, 0, k + 1))
        return k, last

    def _order(self, m, out_fire, in_k, pending):
        # An output needs an image that started: complete and waiting, or arriving (a map's
        # pixels stream through a conv unit while they come in), and whose outputs are not
        # all out yet (pending -1: the arriving image's are).
        ahead = out_fire & (((pending == 0) & (in_k == 0)) | (pending < 0))
        wait = Signal(range(self.bound + 2), name="wait")
        waiting = (pending > 0) & self.o_ready & ~out_fire
        with m.If(waiting & (wait <= self.bound)):
            m.d.sync += wait.eq(wait + 1)
        with m.Elif(~waiting):
            m.d.sync += wait.eq(0)
        m.d.comb += self.fail["order"].eq(ahead | (wait > self.bound) | (pending > self.cap))

    def _reference(self, m, in_fire, out_k, in_k, in_done, out_done, pending):
        # chosen: an image was picked; before: images to output ahead of it; recording: its
        # inputs are still arriving; finished: its outputs are all out.
        chosen, recording, finished = (Signal(name=n) for n in ("chosen", "recording",
                                                                 "finished"))
        before = Signal(range(self.cap + 2), name="before")
        start = in_fire & (in_k == 0) & ~chosen & self.pick
        record = [Signal(self.in_chunk, name=f"record_{r}") for r in range(self.n_in)]
        with m.If(start):
            m.d.sync += [chosen.eq(1), recording.eq(~in_done), before.eq(pending - out_done)]
        with m.Elif(recording & in_done):
            m.d.sync += recording.eq(0)
        with m.If(chosen & out_done):
            with m.If(before != 0):
                m.d.sync += before.eq(before - 1)
            with m.Else():
                m.d.sync += finished.eq(1)
        with m.If(in_fire & (start | recording)):
            for r, slot in enumerate(record):
                with m.If(in_k == r):
                    m.d.sync += slot.eq(self.i_payload)
        bits = Cat(*record)
        want = Signal(self.n_out * self.out_chunk, name="reference")
        m.d.comb += want.eq(self.reference([bits[b] for b in range(self.in_width)]))
        chunk = Signal(self.out_chunk, name="reference_chunk")
        with m.Switch(out_k):
            for r in range(self.n_out):
                with m.Case(r):
                    m.d.comb += chunk.eq(want[r * self.out_chunk:(r + 1) * self.out_chunk])
        # Checked while offered, not only when taken: a stalled output is compared every cycle.
        offered = self.dut.o.valid & chosen & ~finished & (before == 0)
        m.d.comb += self.fail["reference"].eq(offered & (self.dut.o.payload != chunk))
        # Reachable only if the checks see a second image's last output: a proof of depth D is
        # not vacuous when this cover is reached by step D.
        earlier, second = Signal(name="earlier_image"), Signal(name="second_image")
        with m.If(in_done):
            m.d.sync += earlier.eq(1)
        with m.If(start & earlier):
            m.d.sync += second.eq(1)
        m.d.comb += Cover(offered & self.dut.o.ready & second & (out_k == self.n_out - 1),
                          "second image")
