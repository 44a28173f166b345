# amaranth: UnusedElaboratable=no
"""Input buffers alone: vectors written in chunks (whole, divisors of SIMD) come back slice by
slice exactly, under random input gaps and random take/read timing; chunk-width errors."""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from bnnflow.hw.inbuf import MemoryBuffer, RegisterBuffer, buffer_storage, chunk_fits, input_buffer
from bnnflow.model.conventions import pack_int


def chunks_of(vector, chunk):
    """The vector's bits as ``ceil(K/chunk)`` chunk payloads (the last one zero-padded)."""
    k = len(vector)
    padded = np.zeros(-(-k // chunk) * chunk, dtype=np.uint8)
    padded[:k] = vector
    return [pack_int(padded[j:j + chunk]) for j in range(0, len(padded), chunk)]


def run_buffer(k, simd, chunk, vectors, seed, p_valid=0.6, p_take=0.5, reset_at=None):
    """Write ``vectors`` in chunks, take each when available and read all its slices (at
    random cycles); return the slices read per vector as ``(count, SF*SIMD)`` bits."""
    dut = input_buffer(k, simd, chunk)
    sf_count = -(-k // simd)
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.submodules.dut = dut
    rng = np.random.default_rng(seed)
    got = []

    async def bench(ctx):
        queue = [c for v in vectors for c in chunks_of(v, chunk)]
        reads = sf_count if dut.read_latency else 1     # registers: the whole vector at once
        offered, current = False, None
        edge = 0
        while len(got) < len(vectors):
            assert edge < 20000, "buffer stuck"
            in_reset = reset_at is not None and edge == reset_at
            ctx.set(cd.rst, int(in_reset))
            if not offered and queue and rng.random() < p_valid:
                offered = True
            ctx.set(dut.i.valid, int(offered))
            if queue:
                ctx.set(dut.i.payload, queue[0])
            # Take the next vector only when the current one has been read out.
            take = current is None and rng.random() < p_take
            read = current is not None and rng.random() < 0.7
            ctx.set(dut.take, int(take))
            ctx.set(dut.en, int(read))
            if read:
                ctx.set(dut.sf, len(current))
            _, _, avail, iv, ir, x = await ctx.tick().sample(dut.avail, dut.i.valid,
                                                             dut.i.ready, dut.x)
            edge += 1
            if in_reset:
                queue = [c for v in vectors[len(got):] for c in chunks_of(v, chunk)]
                offered, current = False, None
                continue
            if iv and ir:
                queue.pop(0)
                offered = False
            if read:
                # Memory: the slice addressed before the edge is out after it.
                current.append(int(ctx.get(dut.x)) if dut.read_latency else int(x))
                if len(current) == reads:
                    got.append(current)
                    current = None
            if take and avail:
                current = []

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    width = simd if dut.read_latency else k
    bits = [[(word >> b) & 1 for word in vec for b in range(width)] for vec in got]
    return np.array(bits, dtype=np.uint8)


CASES = [
    # (k, simd, chunk): whole vectors, K not a multiple of SIMD, chunks dividing SIMD.
    (12, 4, 12), (13, 4, 13), (37, 5, 37), (16, 16, 16), (9, 9, 9),
    (16, 4, 1), (16, 4, 2), (16, 4, 4), (13, 4, 1), (13, 4, 2), (37, 6, 3), (37, 6, 2),
    (10, 9, 3), (64, 16, 1), (11, 3, 3), (7, 2, 1),
]


@pytest.mark.parametrize(("k", "simd", "chunk"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_slices_read_back_equal_vectors_written_in_chunks(k, simd, chunk, seed):
    rng = np.random.default_rng(seed + k)
    vectors = rng.integers(0, 2, size=(5, k), dtype=np.uint8)
    got = run_buffer(k, simd, chunk, list(vectors), seed)
    expected = np.zeros((5, got.shape[1]), dtype=np.uint8)
    expected[:, :k] = vectors                    # bits past K read as 0
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(("k", "simd", "chunk"), [(13, 4, 13), (13, 4, 2), (37, 6, 3)])
def test_reset_mid_stream_drops_partial_vectors(k, simd, chunk):
    rng = np.random.default_rng(k)
    vectors = rng.integers(0, 2, size=(4, k), dtype=np.uint8)
    got = run_buffer(k, simd, chunk, list(vectors), seed=3, reset_at=9)
    expected = np.zeros((4, got.shape[1]), dtype=np.uint8)
    expected[:, :k] = vectors
    assert np.array_equal(got, expected)


def test_storage_follows_the_slice_width_and_whole_vectors_wait_sf_minus_1():
    assert buffer_storage(8, 3) == MemoryBuffer.storage == "memory"
    assert buffer_storage(8, 8) == RegisterBuffer.storage == "registers"
    assert MemoryBuffer(8, 3).accept_wait == 2 and MemoryBuffer(8, 4, 2).accept_wait == 0
    assert RegisterBuffer(8).accept_wait == 0


@pytest.mark.parametrize(("k", "simd", "chunk", "fits"), [
    (16, 4, 16, True), (16, 4, 2, True), (16, 4, 4, True), (16, 4, 3, False),
    (16, 4, 8, False), (13, 6, 4, False)])
def test_chunk_fits_whole_vectors_and_divisors_of_simd(k, simd, chunk, fits):
    assert chunk_fits(k, simd, chunk) is fits


@pytest.mark.parametrize(("args", "message"), [
    ((16, 4, 3), r"^chunk must be 16 \(the whole vector\) or a divisor of simd \(4\), not 3$"),
    ((16, 16, 4), r"^chunk must be 16 \(the whole vector\) when simd is 16, not 4$"),
    ((16, 4, 17), r"^chunk must be an integer in 1\.\.16, not 17$"),
    ((16, 0, 16), r"^simd must be an integer in 1\.\.16, not 0$"),
])
def test_bad_chunk_or_simd_raise_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        input_buffer(*args)


def test_a_memory_buffer_needs_more_than_one_slice():
    with pytest.raises(ValueError, match=r"^simd must be an integer in 1\.\.15, not 16$"):
        MemoryBuffer(16, 16)
