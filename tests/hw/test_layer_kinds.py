# amaranth: UnusedElaboratable=no
"""A new layer kind is its own module plus one registry line per side (issue 22).

This module plays the part of a new kind's module: ``test_negate`` (output bits = the
complement of the input bits) with its layer class (:mod:`bnnflow.model.kinds` protocol) and
its Amaranth unit (the unit interface of :mod:`bnnflow.hw.units`). The ``negate_kind`` fixture
registers it in ``LAYER_KINDS`` and ``UNITS`` for one test and undoes that afterwards; nothing
else in bnnflow knows the kind. It then runs through the golden model, folding, the manifest
and ``BnnTop`` in Amaranth's simulator with random stalls.
"""

from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bnnflow.errors import ArtifactError
from bnnflow.hw.folding import LayerFold, auto_fold, resolve_folding
from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.hw.top import BnnTop
from bnnflow.hw.units import UNITS, UnitKind
from bnnflow.model import artifact, golden
from bnnflow.model.artifact import LAYER_KINDS, BnnModel, InputSpec
from bnnflow.model.conventions import pack_int
from bnnflow.model.dense import DenseLayer
from bnnflow.model.kinds import matrix_cycles, positive_int
from bnnflow.model.random_net import random_model

KIND = "test_negate"


# --- the kind's module: model side ---------------------------------------------------------


@dataclass(frozen=True)
class NegateLayer:
    """Hidden layer of ``width`` bits whose output is the complement of its input; folded as
    ``PE`` bits a cycle (``width`` neurons of one input each)."""

    name: str
    width: int

    kind = KIND
    is_output = False
    activation_bits = 1
    in_bits = 1
    weight_bits = 0
    synapses = 0
    fan_in = 1
    output_pixels = 1

    @property
    def in_width(self):
        return self.width

    @property
    def out_width(self):
        return self.width

    @property
    def neurons(self):
        return self.width

    def forward(self, x):
        y = (1 - np.asarray(x)).astype(np.uint8)
        return y, y.astype(np.int64)

    def cycles(self, fold):
        return matrix_cycles(1, self.width, fold)

    @staticmethod
    def preactivation(x, weights):
        return -x

    def describe(self):
        return {}

    def to_manifest(self):
        return {"name": self.name, "kind": self.kind, "in_width": self.width,
                "out_width": self.width, "weight_bits": 0, "activation_bits": 1,
                "output": "activation", "arrays": {}}, {}

    @classmethod
    def from_manifest(cls, entry, get_array, where):
        return cls(str(entry["name"]), positive_int(entry, "in_width", where))


# --- the kind's module: hardware side ------------------------------------------------------


class NegateUnit(wiring.Component):
    """Streaming complement: each vector leaves ``cycles`` edges after it arrives.

    Members
    -------
    i : In(stream.Signature(width))
    o : Out(stream.Signature(width))
        The complement of the input vector.
    """

    def __init__(self, width, cycles):
        self.width, self.cycles = width, cycles
        self.latency = cycles
        self.accept_wait = 0
        self.out_width = width
        self.lane_width = 1
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def sidecar(self):
        return {}

    def elaborate(self, platform):
        m = Module()
        busy = Signal()                 # a vector is counting down before it is presented
        data = Signal(self.width)
        count = Signal(range(max(self.cycles - 1, 2)))
        m.d.comb += self.i.ready.eq(~busy & (~self.o.valid | self.o.ready))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            if self.cycles == 1:
                m.d.sync += [self.o.payload.eq(~self.i.payload), self.o.valid.eq(1)]
            else:
                m.d.sync += [data.eq(~self.i.payload), busy.eq(1), count.eq(self.cycles - 2)]
        with m.Elif(busy):
            with m.If(count == 0):
                m.d.sync += [self.o.payload.eq(data), self.o.valid.eq(1), busy.eq(0)]
            with m.Else():
                m.d.sync += count.eq(count - 1)
        return m


def negate_unit(layer, fold, options):
    return NegateUnit(layer.width, layer.cycles(fold))


@pytest.fixture
def negate_kind(monkeypatch):
    """The two registry lines of the new kind, undone after the test."""
    monkeypatch.setitem(LAYER_KINDS, KIND, NegateLayer)
    monkeypatch.setitem(UNITS, KIND, UnitKind(negate_unit))


# --- tests ---------------------------------------------------------------------------------


def with_negations(seed=0):
    """13 -> fc0 (9) -> neg0 -> fc1 (7) -> neg1 -> fc2 (4 classes), and the same network
    without the negations, the weights after each complemented: XNOR(~x, w) = XNOR(x, ~w)."""
    dense = random_model([13, 9, 7, 4], seed=seed).layers
    layers = [dense[0], NegateLayer("neg0", 9), dense[1], NegateLayer("neg1", 7), dense[2]]
    reference = [dense[0]] + [DenseLayer(d.name, 1 - d.weights, d.thresholds)
                              for d in dense[1:]]
    spec = InputSpec(width=13, shape=(13,))
    return BnnModel(layers, spec), BnnModel(reference, spec)


def images(count, seed):
    return np.random.default_rng(seed).integers(0, 2, size=(count, 13))


def test_golden_runs_the_kind_step():
    model, reference = with_negations()
    x = images(40, 0)
    got, want = golden.run(model, x), golden.run(reference, x)
    assert np.array_equal(got.popcounts, want.popcounts)
    assert np.array_equal(got.classes, want.classes)
    a0, a1 = want.activations
    assert all(np.array_equal(g, w) for g, w in
               zip(got.activations, [a0, 1 - a0, a1, 1 - a1], strict=True))


def test_folding_asks_the_kind(negate_kind):
    model, _ = with_negations()
    folding, achieved = auto_fold(model, 4)
    assert folding[1] == LayerFold(3, 1) and folding[3] == LayerFold(2, 1)
    assert achieved == 4
    with pytest.raises(ValueError, match=r"^layer 1 \(neg0, 1 inputs, 9 neurons\): simd must "
                                         r"be an integer in 1\.\.1, not 2$"):
        resolve_folding(model, "3x5,3x2,2x3,2x1,1x7")


@dataclass(frozen=True)
class PixelNegateLayer(NegateLayer):
    """The same, applied to 3 output pixels per vector (as a convolution would be)."""

    output_pixels = 3

    def cycles(self, fold):
        return matrix_cycles(1, self.width, fold, self.output_pixels)


def test_auto_fold_counts_output_pixels():
    dense = random_model([13, 9, 4], seed=0).layers
    model = BnnModel([dense[0], PixelNegateLayer("neg0", 9), dense[1]],
                     InputSpec(width=13, shape=(13,)))
    folding, achieved = auto_fold(model, 6)
    assert folding[1] == LayerFold(5, 1)            # 3 pixels x ceil(9 / 5) = 6 cycles
    assert achieved == 6
    with pytest.raises(ValueError, match=r"^layer 1 \(neg0\): no folding reaches 2 cycles; it "
                                         r"needs at least 3 \(fully parallel\)$"):
        auto_fold(model, 2)


def test_manifest_round_trip_goes_through_the_registry(tmp_path, negate_kind):
    model, _ = with_negations()
    artifact.save(model, tmp_path / "neg.bnn")
    loaded = artifact.load(tmp_path / "neg.bnn")
    assert loaded.layers[1] == NegateLayer("neg0", 9)
    assert [layer.kind for layer in loaded.layers] == [
        "binary_dense", KIND, "binary_dense", KIND, "binary_dense"]
    x = images(10, 1)
    assert np.array_equal(golden.run(loaded, x).popcounts, golden.run(model, x).popcounts)


def decode(top, outputs):
    classes = fields_of(outputs, 1, top.class_width)[:, 0]
    pops = fields_of(outputs, top.num_classes, top.popcount_width, lsb=top.class_width)
    return classes, pops


# Folded: the negations take 3 and 4 cycles, fc1's memory buffer copies their whole vectors in.
FOLDS = [None, "3x5,3x1,2x3,2x1,1x7"]


@pytest.mark.parametrize("fold", FOLDS)
@pytest.mark.parametrize(("p_valid", "p_ready", "seed"), [(0.6, 0.5, 1), (0.9, 0.2, 2)])
def test_bnntop_builds_the_kind_and_matches_golden_under_stalls(negate_kind, fold, p_valid,
                                                                p_ready, seed):
    model, _ = with_negations(seed)
    top = BnnTop(model, fold, pipeline=1, debug_taps=True)
    assert isinstance(top.layers[1], NegateUnit) and isinstance(top.layers[3], NegateUnit)
    x = images(8, seed)
    ref = golden.run(model, x)
    taps = {j: (getattr(top, f"tap_{j}_valid"), getattr(top, f"tap_{j}_data"))
            for j in range(len(model.layers))}
    run = simulate_stream(top, [pack_int(v) for v in x], seed=seed, p_valid=p_valid,
                          p_ready=p_ready, taps=taps)
    classes, pops = decode(top, run.outputs)
    assert np.array_equal(classes, ref.classes)
    assert np.array_equal(pops, ref.popcounts)
    for j, expected in enumerate(ref.layer_outputs()):
        got = fields_of([v for _, v in run.taps[j]], model.layers[j].out_width,
                        top.layers[j].lane_width)
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("fold", FOLDS)
def test_stall_free_ii_and_latency_with_the_kind_equal_sidecar(negate_kind, fold):
    model, _ = with_negations()
    top = BnnTop(model, fold, pipeline=1)
    sidecar = top.sidecar()
    neg = sidecar["layers"][1]
    assert neg["cycles"] == (1 if fold is None else 3)
    assert (neg["weight_bits"], neg["synapses"], neg["accept_wait"]) == (0, 0, 0)
    assert neg["latency"] == neg["cycles"]
    single = simulate_stream(top, [pack_int(images(1, 0)[0])])
    assert single.out_edges[0] - single.in_edges[0] == sidecar["latency"] == top.latency
    top = BnnTop(model, fold, pipeline=1)
    run = simulate_stream(top, [pack_int(v) for v in images(5, 0)])
    assert np.array_equal(np.diff(run.out_edges), np.full(4, sidecar["ii"]))
    assert sidecar["ii"] == max(layer["cycles"] for layer in sidecar["layers"])


def test_an_unregistered_kind_is_refused_where_the_registries_are_consulted(tmp_path):
    from bnnflow.boards.estimate import estimate_ffs, estimate_luts

    assert KIND not in LAYER_KINDS and KIND not in UNITS
    model, _ = with_negations()
    with pytest.raises(ValueError, match=r"^layer 1 \(neg0\): no hardware unit for layer kind "
                                         r"'test_negate' \(known: binary_conv2d, binary_dense, "
                                         r"maxpool2d, ternary_conv2d, ternary_dense\)$"):
        BnnTop(model)
    artifact.save(model, tmp_path / "neg.bnn")
    with pytest.raises(ArtifactError, match=r"layer 1: unknown layer kind 'test_negate' "
                                            r"\(this bnnflow knows binary_conv2d, binary_dense, "
                                            r"maxpool2d, ternary_conv2d, ternary_dense\)"):
        artifact.load(tmp_path / "neg.bnn")
    # The resource model covers the kinds it models only, registered or not.
    folding = resolve_folding(model)
    for estimate in (estimate_ffs, estimate_luts):
        with pytest.raises(ValueError, match=r"^layer 1 \(neg0\): no resource estimate for "
                                             r"layer kind 'test_negate' \(estimated: "
                                             r"binary_dense, ternary_dense, binary_conv2d, "
                                             r"ternary_conv2d, maxpool2d\)$"):
            estimate(model, folding)
