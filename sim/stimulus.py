"""Stimulus, driver and monitor shared by every simulator back end (the scoreboard is
:mod:`bnnflow.sim.scoreboard`).

The pieces follow cocotb's split (driver, monitor, model, scoreboard) but hold no simulator
code: a back end (Amaranth's simulator, or a cocotb test running on Verilator or Icarus) calls
:meth:`StreamBench.drive` before every clock edge, applies the four values it returns (the
inputs ``i.valid``, ``i.payload``, ``o.ready`` and the synchronous ``rst``), and calls
:meth:`StreamBench.edge` with the values its design showed *at* that edge. The bench decides
everything else, so the same seed gives the same stall pattern and the same reset edge, cycle
for cycle, on every simulator (the C++ harness of :mod:`bnnflow.sim.direct` replays the same
rules).

Stream protocol (``amaranth.lib.stream``): a transfer happens at an edge where ``valid`` and
``ready`` are both high. The driver raises ``i.valid`` with the next image after a seeded random
gap and holds it and the payload until the transfer; the monitor lowers ``o.ready`` at random.

A run has two phases:

``timing``
    ``n_timing`` images fed back to back, ``o.ready`` held high, starting right after reset.
    The latency is the number of edges from the first input transfer to the first output
    transfer; the II is the mean spacing of the output transfers in the second half of the
    phase (the pipeline is full there). Their outputs are checked too.
``main``
    Every stimulus image with random input gaps and output back-pressure of probability
    ``stall``; starts when the timing phase ends. Output ``k`` belongs to image
    ``k``. Per-layer debug taps, when the design has them, are recorded here.

A phase ends when every output has arrived and every input has been sent (an output may
leave before its image's last pixels, which a max-pool that drops the map's last rows never
reads), or when nothing has transferred for
``max_idle`` edges (a design that lost or stuck data); missing outputs are mismatches.

Reset in the middle of the main phase (``reset_after=N``, off by default; nothing else
changes when it is off):

1. *armed*: the main phase runs as above until ``N`` images have transferred in;
2. *hold*: from the next cycle ``o.ready`` is held low (the random ``o.ready`` draws go on, one
   per cycle, and are overridden) while the driver keeps feeding images, until an edge shows
   an output waiting (``o.valid`` high) and the next image offered but not taken (``i.valid``
   high, ``i.ready`` low: a first layer with ``SF > 1`` is writing it into its memory a word a
   cycle, or its buffers are full), or no image left to offer. So at least one image sits in
   the output register and, behind it, the layers hold the later images mid-fold and in their
   buffers; waiting for the output first makes this so at any stall probability, 0 included;
3. *reset*: the next cycle drives ``rst`` high with ``i.valid`` and ``o.ready`` low (nothing
   transfers at that edge);
4. *restart*: the driver starts again with the first image whose output had not arrived (a
   new gap is drawn first), and outputs go on being recorded in image order, so the
   scoreboard is unchanged: outputs that arrived before the reset are checked as usual, and
   every resent image must match too. An output that transfers after the reset earlier than
   ``min_latency`` edges after the input transfer of the image it would belong to (or before
   that image was sent again) cannot come from that image: it is *stale* (left over from the
   images before the reset), recorded in :attr:`StreamBench.stale` instead of the outputs, and
   counts as a mismatch. With ``min_latency`` the design's latency for an idle network (the
   sidecar's), which no image can beat, every output that leaves the design before the first
   resent image could have, is caught.

Debug taps keep, at the reset, the entries of the images whose outputs had arrived; the resent
images' entries follow.
"""

from dataclasses import dataclass

import numpy as np

# The one stall model (and its generators), shared with the component benches of bnnflow.hw.
from ..hw.testbench import Stalls, gap_rng
from ..hw.timing import mean_spacing

__all__ = [
    "int_to_bits",
    "gap_rng",
    "StreamBench",
    "default_max_idle",
    "check_reset_after",
    "StreamPlan",
]


def int_to_bits(value, width):
    """Inverse of :func:`bnnflow.model.conventions.pack_int`: ``width`` bits, LSB first, as a
    uint8 array."""
    value = int(value)
    return np.array([(value >> i) & 1 for i in range(width)], dtype=np.uint8)


def default_max_idle(latency, ii, stall):
    """Edges without any transfer after which a phase is declared stuck.

    A healthy design transfers something at least every ``latency + ii`` edges plus the
    random stalls; ``40 / (1 - stall)`` covers a run of stalls with probability below
    ``stall ** (40 / (1 - stall))`` (about 1e-18 at ``stall = 0.9``).
    """
    return int(2 * (int(latency) + int(ii)) + 40 / (1.0 - float(stall)) + 16)


def check_reset_after(reset_after, images):
    """Check the number of images to transfer before a mid-stream reset.

    Parameters
    ----------
    reset_after : int
        Main-phase images transferred in before the reset.
    images : int
        Main-phase images in the run.

    Returns
    -------
    int
        ``reset_after``, unchanged.

    Raises
    ------
    ValueError
        Fewer than 2 images, or ``reset_after`` not an integer in ``1..images-1`` (at least one
        image must be left to send, or nothing would be in flight to reset).
    """
    if images < 2:
        raise ValueError(f"a reset mid-stream needs at least 2 images, not {images}")
    if (not isinstance(reset_after, int) or isinstance(reset_after, bool)
            or not 1 <= reset_after < images):
        raise ValueError(f"reset_after must be an integer in 1..{images - 1} (images "
                         f"transferred before the reset, one left to send), not "
                         f"{reset_after!r}")
    return reset_after


@dataclass(frozen=True)
class StreamPlan:
    """How a :class:`~bnnflow.sim.backend.SimJob` drives one generated design (its sidecar).

    A job holds one payload per image (the whole input vector, packed LSB first). A design
    whose sidecar ``input_layout`` is ``"pixels"`` (a conv network) takes an image as
    ``H * W`` transfers of one ``C``-bit pixel each, pixel ``t`` being bits
    ``[t * C, (t + 1) * C)`` of the channels-last vector; :meth:`from_sidecar` cuts the job's
    payloads into those transfers. A conv or pool layer's debug tap shows one output pixel per
    transfer (the sidecar tap's ``count`` per image).

    Parameters
    ----------
    main_inputs, timing_inputs : list of int
        Input transfers of the two phases (``per_image`` per image).
    per_image : int
        Input transfers per image.
    tap_counts : list of int
        Tap transfers per image of each debug tap.
    min_latency : int
        The stale-output bound after a reset: the sidecar's latency for whole-vector input;
        1 for a pixel stream, whose latency (from the last pixel, at full input rate) is no
        lower bound: with slow pixels the network is idle when the last needed one comes.
    needed : int
        Transfers of an image its output depends on (sidecar ``input_layout.needed``; the
        stale check counts from the last of them).
    max_idle : int
        Edges without a transfer before a phase is declared stuck (:func:`default_max_idle`
        of the sidecar's latency and II, plus the pixels of an image).
    """

    main_inputs: list
    timing_inputs: list
    per_image: int
    tap_counts: list
    min_latency: int
    max_idle: int
    needed: int = 1

    @classmethod
    def from_sidecar(cls, sidecar, main_inputs, timing_inputs, stall, debug_taps=False):
        layout = sidecar.get("input_layout") or {"kind": "vector", "transfers": 1}
        per_image = int(layout.get("transfers", 1))
        if layout["kind"] == "pixels":
            width = int(layout["width"])
            mask = (1 << width) - 1

            def split(values):
                return [(int(v) >> (t * width)) & mask for v in values
                        for t in range(per_image)]
        elif per_image == 1:
            def split(values):
                return [int(v) for v in values]
        else:
            raise ValueError(f"unknown input_layout {layout!r}")
        latency = int(sidecar["latency"])
        taps = sidecar.get("taps") or []
        counts = [int(tap.get("count", 1)) if tap.get("kind") == "pixels" else 1
                  for tap in taps] if debug_taps else []
        pixels = layout["kind"] == "pixels"
        return cls(split(main_inputs), split(timing_inputs), per_image, counts,
                   1 if pixels else latency,
                   default_max_idle(latency, sidecar["ii"], stall) + 4 * per_image,
                   int(layout.get("needed", per_image)))

    def bench(self, *, stall, seed, progress=None, reset_after=None):
        """The :class:`StreamBench` of this plan."""
        return StreamBench(self.main_inputs, self.timing_inputs, stall=stall, seed=seed,
                           max_idle=self.max_idle, taps=len(self.tap_counts),
                           progress=progress, reset_after=reset_after,
                           min_latency=self.min_latency, per_image=self.per_image,
                           tap_counts=self.tap_counts, needed=self.needed)


# States of the mid-stream reset (the C++ harness uses the same numbers).
_RESET_OFF, _RESET_ARMED, _RESET_HOLD, _RESET_FIRE, _RESET_DONE = range(5)


class StreamBench:
    """Driver, monitor and recorder of one run, independent of the simulator.

    Parameters
    ----------
    main_inputs : list of int
        Input payloads of the main phase, ``per_image`` per image.
    timing_inputs : list of int
        Input payloads of the timing phase (fed first, back to back).
    per_image : int
        Input transfers per image: 1 for a design that takes whole input vectors, ``H * W``
        for a conv network's pixel stream (sidecar ``input_layout``). An image counts as
        transferred (``in_edges``, ``reset_after``) at the edge of its last transfer.
    tap_counts : sequence of int or None
        Tap transfers per image of each tap (1 for vector taps, ``Ho * Wo`` for a conv or
        pool layer's pixel tap); None: 1 each.
    needed : int or None
        Transfers of an image its output depends on (sidecar ``input_layout.needed``: a pool
        that drops the map's last rows lets the output leave before the last pixels); the
        stale check after a reset counts ``min_latency`` from the transfer of the last needed
        one. None: ``per_image``.
    stall : float
        Probability in ``[0, 1)`` of a gap cycle before each input (repeated: the gap length is
        geometric) and of ``o.ready`` low in each cycle of the main phase.
    seed : int
        Seed of both random streams.
    max_idle : int
        Edges with no transfer after which a phase ends with missing outputs.
    taps : int
        Number of debug taps to record (0: none).
    progress : callable or None
        ``progress(outputs_received_in_main_phase)``, called after each main-phase output.
    reset_after : int or None
        Reset the design in the middle of the main phase once this many main-phase images
        have transferred in (see the module docstring); None: no reset.
    min_latency : int
        Fewest edges from an image's input transfer to its output transfer (the design's
        idle-network latency); an output after the reset that comes sooner is stale.

    Raises
    ------
    ValueError
        ``stall`` outside ``[0, 1)``, ``reset_after`` outside ``1..len(main_inputs)-1``,
        ``min_latency`` not a positive integer.

    Members
    -------
    outputs : dict of str to list of int
        Output payloads per phase, in arrival order.
    in_edges, out_edges : dict of str to list of int
        Edge numbers of the input and output transfers per phase.
    tap_data : list of lists of int
        Per tap, the data of each main-phase tap transfer, in order.
    cycles : int
        Edges simulated.
    stuck : dict of str to bool
        Whether a phase ended by the idle timeout.
    reset_info : dict or None
        Once the mid-stream reset is applied: ``edge`` (the edge at which ``rst`` was high,
        numbered like :attr:`in_edges`), ``restart`` (stream index of the first image sent
        again), ``in_flight`` (images transferred in whose outputs had not arrived) and
        ``input_waiting`` (an image was offered and not yet taken).
    stale : list of (int, int)
        ``(edge, payload)`` of each stale output after the reset.
    """

    PHASES = ("timing", "main")

    def __init__(self, main_inputs, timing_inputs, *, stall=0.0, seed=0, max_idle=1000,
                 taps=0, progress=None, reset_after=None, min_latency=1, per_image=1,
                 tap_counts=None, needed=None):
        stall = float(stall)
        if not isinstance(per_image, int) or per_image < 1 or len(main_inputs) % per_image \
                or len(timing_inputs) % per_image:
            raise ValueError(f"per_image must be a positive integer dividing the input counts "
                             f"({len(main_inputs)}, {len(timing_inputs)}), not {per_image!r}")
        self.per_image = per_image
        needed = per_image if needed is None else needed
        if not isinstance(needed, int) or not 1 <= needed <= per_image:
            raise ValueError(f"needed must be an integer in 1..{per_image}, not {needed!r}")
        self._needed_at = needed % per_image
        self.need_edges = []    # main phase: edge of each image's last needed transfer
        self.tap_counts = list(tap_counts) if tap_counts is not None else [1] * int(taps)
        if not 0.0 <= stall < 1.0:
            raise ValueError(f"stall must be a probability in [0, 1), not {stall!r}")
        if reset_after is not None:
            check_reset_after(reset_after, len(main_inputs) // per_image)
        if (not isinstance(min_latency, int) or isinstance(min_latency, bool)
                or min_latency < 1):
            raise ValueError(f"min_latency must be a positive integer, not {min_latency!r}")
        self.reset_after = reset_after
        self.min_latency = min_latency
        self.reset_info = None
        self.stale = []
        self._reset_state = _RESET_OFF if reset_after is None else _RESET_ARMED
        self._resent_from = 0   # index in need_edges of the first image sent after the reset
        self._input_waiting = False
        self.inputs = {"timing": [int(v) for v in timing_inputs],
                       "main": [int(v) for v in main_inputs]}
        self.stall = stall
        self.max_idle = int(max_idle)
        self._stalls = Stalls(seed, stall, stall)
        self.progress = progress
        self.outputs = {p: [] for p in self.PHASES}
        self.in_edges = {p: [] for p in self.PHASES}
        self.out_edges = {p: [] for p in self.PHASES}
        self.stuck = {p: False for p in self.PHASES}
        self.tap_data = [[] for _ in range(int(taps))]
        self.cycles = 0
        self._phase_index = 0
        self._next_in = 0
        self._gap = 0
        self._idle = 0
        self._ready = 1
        self._start_phase()

    # -- state ------------------------------------------------------------------------------
    @property
    def phase(self):
        """The current phase name, or None when the run is over."""
        if self._phase_index >= len(self.PHASES):
            return None
        return self.PHASES[self._phase_index]

    @property
    def done(self):
        return self.phase is None

    def _stalling(self):
        return self.phase == "main" and self.stall > 0.0

    def _draw_gap(self):
        return self._stalls.gap() if self._stalling() else 0

    def _images(self, phase):
        return len(self.inputs[phase]) // self.per_image

    def _start_phase(self):
        # Skip empty phases so that `done` becomes true without simulating.
        while self.phase is not None and not self.inputs[self.phase]:
            self._phase_index += 1
        self._next_in = 0
        self._idle = 0
        if self.phase is not None:
            self._gap = self._draw_gap()

    # -- per cycle --------------------------------------------------------------------------
    def drive(self):
        """Values to apply before the next edge: ``(i_valid, i_payload, o_ready, rst)``."""
        phase = self.phase
        if phase is None:
            return 0, 0, 1, 0
        inputs = self.inputs[phase]
        valid = int(self._next_in < len(inputs) and self._gap == 0)
        payload = inputs[self._next_in] if valid else 0
        # One o.ready draw per stalling cycle, hold and reset cycles included, so that the
        # draws stay in step with the cycles (the C++ harness indexes them by cycle).
        self._ready = int(not self._stalling() or self._stalls.ready())
        if self._reset_state == _RESET_FIRE:
            self._ready = 0
            return 0, 0, 0, 1
        if self._reset_state == _RESET_HOLD:
            self._ready = 0
        return valid, payload, self._ready, 0

    def edge(self, i_valid, i_ready, o_valid, o_payload, taps=()):
        """Record what the design showed at an edge; return False when the run is over.

        Parameters
        ----------
        i_valid, i_ready, o_valid : int
            The stream handshakes at the edge (``i_valid`` as driven).
        o_payload : int
            The output payload at the edge (read only when it transfers).
        taps : sequence of (valid, data)
            Each tap's valid and data at the edge.
        """
        phase = self.phase
        if phase is None:
            return False
        edge = self.cycles
        self.cycles += 1
        if self._reset_state == _RESET_FIRE:
            # rst was high at this edge: whatever the design showed is void.
            self._restart(edge)
            return True
        moved = False
        if i_valid and i_ready:
            self._next_in += 1
            if self._next_in % self.per_image == 0:     # the image's last transfer
                self.in_edges[phase].append(edge)
            if phase == "main" and self._next_in % self.per_image == self._needed_at:
                self.need_edges.append(edge)
            self._gap = self._draw_gap()
            moved = True
        elif self._gap:
            self._gap -= 1
        if o_valid and self._ready:
            if self._reset_state == _RESET_DONE and self._is_stale(edge):
                # Not progress: a design that only repeats stale outputs ends by the timeout.
                self.stale.append((edge, int(o_payload)))
            else:
                self.outputs[phase].append(int(o_payload))
                self.out_edges[phase].append(edge)
                moved = True
                if phase == "main" and self.progress is not None:
                    self.progress(len(self.outputs["main"]))
        if phase == "main":
            for recorded, (valid, data) in zip(self.tap_data, taps, strict=False):
                if valid:
                    recorded.append(int(data))
            if self._reset_state == _RESET_HOLD:
                waiting = bool(i_valid) and not i_ready
                if o_valid and (waiting or self._next_in >= len(self.inputs["main"])):
                    self._reset_state = _RESET_FIRE
                    self._input_waiting = waiting
            elif (self._reset_state == _RESET_ARMED
                  and len(self.in_edges["main"]) >= self.reset_after):
                self._reset_state = _RESET_HOLD
        self._idle = 0 if moved else self._idle + 1
        # Every input sent too: an output may leave before its image's last pixels (a
        # max-pool that drops the map's last rows), which the design still expects.
        if (len(self.outputs[phase]) >= self._images(phase)
                and self._next_in >= len(self.inputs[phase])):
            self._phase_index += 1
            self._start_phase()
        elif self._idle >= self.max_idle:
            self.stuck[phase] = True
            self._phase_index += 1
            self._start_phase()
        return not self.done

    def _restart(self, edge):
        """After the reset edge: send again from the first image whose output is missing."""
        restart = len(self.outputs["main"])
        self.reset_info = {"edge": edge, "restart": restart,
                           "in_flight": len(self.in_edges["main"]) - restart,
                           "input_waiting": self._input_waiting}
        for recorded, count in zip(self.tap_data, self.tap_counts, strict=True):
            del recorded[restart * count:]
        self._resent_from = len(self.need_edges)
        self._next_in = restart * self.per_image
        self._gap = self._draw_gap()
        self._idle = 0
        self._reset_state = _RESET_DONE

    def _is_stale(self, edge):
        """Whether an output at ``edge`` after the reset is too early for its image."""
        ins = self.need_edges
        j = self._resent_from + len(self.outputs["main"]) - self.reset_info["restart"]
        return j >= len(ins) or edge < ins[j] + self.min_latency

    # -- results ----------------------------------------------------------------------------
    def timing(self):
        """``(latency, ii)`` measured in the timing phase (None where not measurable)."""
        ins, outs = self.in_edges["timing"], self.out_edges["timing"]
        latency = outs[0] - ins[0] if ins and outs and not self.stuck["timing"] else None
        ii = None if self.stuck["timing"] else mean_spacing(outs)
        return latency, ii

    def to_dict(self):
        """Everything recorded, as JSON-able data (the cocotb bench sends this back)."""
        latency, ii = self.timing()
        return {"outputs": self.outputs, "in_edges": self.in_edges,
                "out_edges": self.out_edges, "stuck": self.stuck, "tap_data": self.tap_data,
                "cycles": self.cycles, "latency": latency, "ii": ii,
                "reset": self.reset_info, "stale": [list(s) for s in self.stale]}
