# amaranth: UnusedElaboratable=no
"""MVTU against the numpy reference: sizes, foldings (non-divisors too), pipeline depths,
multi-thresholds, popcount outputs, random stalls on both sides, measured II and latency."""

import numpy as np
import pytest

from bnnflow.hw.folding import LayerFold
from bnnflow.hw.mvtu import MVTU, pack_weights, padded_weights
from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.model import conventions
from bnnflow.model.conventions import pack_int


def make_layer(k, n, t, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, size=(n, k), dtype=np.uint8)
    th = None
    if t:
        th = np.sort(rng.integers(0, k + 2, size=(n, t)), axis=1)
        th[0] = 0
        th[-1] = k + 1
    return w, th


@pytest.mark.parametrize(("pe", "simd"), [(1, 1), (3, 4), (4, 5), (13, 37), (2, 37)])
def test_pack_weights_puts_neuron_p_input_s_at_bit_p_simd_plus_s(pe, simd):
    w, _ = make_layer(37, 13, 0, 0)
    words = pack_weights(w, pe, simd)
    nf, sf = -(-13 // pe), -(-37 // simd)
    assert len(words) == nf * sf
    for a in range(nf):
        for b in range(sf):
            for p in range(pe):
                for s in range(simd):
                    neuron, k = a * pe + p, b * simd + s
                    bit = (words[a * sf + b] >> (p * simd + s)) & 1
                    if neuron < 13 and k < 37:
                        assert bit == w[neuron, k]
                    elif neuron < 13:
                        assert bit == 1            # padded inputs: weight 1 against x = 0


def test_padding_is_neutral_for_popcounts():
    w, _ = make_layer(37, 13, 0, 1)
    x = np.random.default_rng(1).integers(0, 2, size=(9, 37))
    wp = padded_weights(w, 4, 5)
    xp = np.zeros((9, wp.shape[1]), dtype=np.uint8)
    xp[:, :37] = x
    assert np.array_equal(conventions.popcount_xnor(xp, wp)[:, :13],
                          conventions.popcount_xnor(x, w))


def expected_outputs(x, w, th):
    p = conventions.popcount_xnor(x, w)
    return p if th is None else conventions.fire(p, th)


FOLDS = [(13, 37), (5, 8), (13, 5), (4, 37), (2, 36), (1, 1)]


@pytest.mark.parametrize(("pe", "simd"), FOLDS)
@pytest.mark.parametrize("pipeline", [0, 2])
@pytest.mark.parametrize("t", [1, 0])
@pytest.mark.parametrize("rom_register", [True, False])
def test_outputs_match_reference_under_random_stalls(pe, simd, pipeline, t, rom_register):
    k, n = 37, 13
    w, th = make_layer(k, n, t, seed=pe * 100 + simd)
    rng = np.random.default_rng(simd)
    x = rng.integers(0, 2, size=(5 if pe * simd > 1 else 3, k))
    dut = MVTU(w, th, LayerFold(pe, simd), pipeline, rom_register=rom_register)
    run = simulate_stream(dut, [pack_int(v) for v in x], seed=pe + simd, p_valid=0.6,
                          p_ready=0.4)
    got = fields_of(run.outputs, n, dut.lane_width)
    assert np.array_equal(got, expected_outputs(x, w, th))


@pytest.mark.parametrize(("k", "n", "pe", "simd"), [(37, 13, 13, 37), (37, 13, 5, 8),
                                                    (8, 3, 1, 3), (1, 1, 1, 1), (64, 10, 5, 16)])
@pytest.mark.parametrize("pipeline", [0, 1, 3])
@pytest.mark.parametrize("rom_register", [True, False])
def test_stall_free_ii_and_latency_equal_attributes(k, n, pe, simd, pipeline, rom_register):
    w, th = make_layer(k, n, 1, seed=k + n)
    x = np.random.default_rng(2).integers(0, 2, size=(6, k))
    dut = MVTU(w, th, (pe, simd), pipeline, rom_register=rom_register)
    run = simulate_stream(dut, [pack_int(v) for v in x])
    assert np.array_equal(fields_of(run.outputs, n, 1), expected_outputs(x, w, th))
    assert np.array_equal(np.diff(run.out_edges), np.full(len(x) - 1, dut.cycles))
    assert run.out_edges[0] - run.in_edges[0] == dut.latency
    rom = 0 if pe * simd == k * n else 1
    assert dut.latency == dut.cycles + rom + pipeline + 1
    assert dut.weights_in == ("constants" if rom == 0 else "rom")


@pytest.mark.parametrize(("pe", "simd"), [(13, 37), (5, 8)])
def test_multi_threshold_outputs_count_thresholds_reached(pe, simd):
    k, n, t = 37, 13, 3
    w, th = make_layer(k, n, t, seed=7)
    x = np.random.default_rng(7).integers(0, 2, size=(6, k))
    dut = MVTU(w, th, (pe, simd), 1)
    assert dut.lane_width == 2 and dut.out_width == 2 * n
    run = simulate_stream(dut, [pack_int(v) for v in x], seed=3, p_valid=0.7, p_ready=0.5)
    assert np.array_equal(fields_of(run.outputs, n, 2), expected_outputs(x, w, th))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fold": (14, 1)}, r"^pe must be an integer in 1\.\.13, not 14$"),
    ({"fold": (1, 38)}, r"^simd must be an integer in 1\.\.37, not 38$"),
    ({"fold": (0, 1)}, "^pe must be a positive integer, not 0$"),
    ({"fold": (1, -2)}, "^simd must be a positive integer, not -2$"),
    ({"fold": (1.5, 2)}, "^pe must be a positive integer, not 1.5$"),
    ({"pipeline": -1}, "^pipeline must be a non-negative integer, not -1$"),
    ({"thresholds": np.zeros((12, 1))}, r"^thresholds must have shape \(13, T\)"),
])
def test_bad_parameters_raise_value_error(kwargs, message):
    w, _ = make_layer(37, 13, 0, 0)
    with pytest.raises(ValueError, match=message):
        MVTU(w, **kwargs)


@pytest.mark.parametrize("bad", [1, None, "yes"])
def test_rom_register_must_be_a_bool(bad):
    with pytest.raises(TypeError, match=f"^rom_register must be a bool, not {bad!r}$"):
        MVTU(np.ones((2, 4)), np.ones((2, 1)), (1, 2), rom_register=bad)


@pytest.mark.parametrize(("pe", "simd"), [(5, 8), (4, 37), (1, 6), (13, 5)])
def test_out_chunks_send_each_fold_with_padded_neurons_zero(pe, simd):
    k, n = 37, 13
    w, th = make_layer(k, n, 1, seed=pe)
    x = np.random.default_rng(pe).integers(0, 2, size=(4, k))
    dut = MVTU(w, th, (pe, simd), 1, out_chunks=True)
    nf = -(-n // pe)
    assert dut.chunk_width == pe and dut.out_width == n
    run = simulate_stream(dut, [pack_int(v) for v in x], expected_outputs=len(x) * nf, seed=pe,
                          p_valid=0.7, p_ready=0.4)
    chunks = fields_of(run.outputs, pe, 1).reshape(len(x), nf * pe)
    assert np.array_equal(chunks[:, :n], expected_outputs(x, w, th))
    assert not chunks[:, n:].any()


@pytest.mark.parametrize(("chunk", "simd"), [(1, 4), (2, 4), (3, 6)])
def test_chunked_inputs_match_reference(chunk, simd):
    k, n = 13, 7
    w, th = make_layer(k, n, 1, seed=chunk)
    x = np.random.default_rng(chunk).integers(0, 2, size=(4, k))
    dut = MVTU(w, th, (3, simd), 1, in_chunk=chunk)
    count = -(-k // chunk)
    padded = np.zeros((len(x), count * chunk), dtype=np.uint8)
    padded[:, :k] = x
    inputs = [pack_int(v[j * chunk:(j + 1) * chunk]) for v in padded for j in range(count)]
    run = simulate_stream(dut, inputs, expected_outputs=len(x), seed=chunk, p_valid=0.6,
                          p_ready=0.5)
    assert np.array_equal(fields_of(run.outputs, n, 1), expected_outputs(x, w, th))
    assert dut.input_storage == "memory" and dut.accept_wait == 0


def test_out_chunks_must_be_a_bool():
    with pytest.raises(TypeError, match="^out_chunks must be a bool, not 1$"):
        MVTU(np.ones((2, 4)), np.ones((2, 1)), (1, 2), out_chunks=1)


def test_in_chunk_must_fit_the_buffer():
    with pytest.raises(ValueError, match=r"^chunk must be 4 \(the whole vector\) or a divisor "
                                         r"of simd \(2\), not 3$"):
        MVTU(np.ones((2, 4)), np.ones((2, 1)), (1, 2), in_chunk=3)
