# amaranth: UnusedElaboratable=no

"""The UART inference top in simulation, through the simulated transport, vs the golden model."""

import dataclasses

import numpy as np
import pytest

from bnnflow.boards.host import (
    SimTransport,
    TransportTimeout,
    classify_over,
    decode_reply,
    encode_request,
)
from bnnflow.boards.uart_top import UartTop, link_rate, reply_layout, request_bytes
from bnnflow.model import golden
from bnnflow.model.random_net import random_model


def random_bits(model, count, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(count, model.input.width), dtype=np.uint8)


@pytest.mark.parametrize(("widths", "folding", "pipeline"), [
    ([37, 13, 5], None, 0),
    ([37, 13, 5], [(3, 8), (2, 5)], 1),
    # One cycle per synapse: the network is slower than the UART delivers requests, so the
    # pending register and back-pressure are exercised.
    ([16, 9, 3], [(1, 1), (1, 1)], 0),
    ([8, 2], None, 2),
])
@pytest.mark.parametrize("popcounts", [True, False])
def test_uart_top_answers_like_golden_model(widths, folding, pipeline, popcounts):
    model = random_model(widths, seed=len(widths) + widths[0])
    bits = random_bits(model, 6, seed=widths[0])
    top = UartTop(model, folding, pipeline, divisor=4, popcounts=popcounts)
    with SimTransport(top) as transport:
        result = classify_over(transport, model, bits, popcounts=popcounts)
    expected = golden.run(model, bits)
    assert np.array_equal(result.classes, expected.classes)
    if popcounts:
        assert np.array_equal(result.popcounts, expected.popcounts)
    else:
        assert result.popcounts is None
    assert result.mismatches == 0


def test_popcounts_past_a_byte_after_n_bit_levels_arrive_whole():
    # 3-bit levels into 37 inputs: popcounts up to 7 * 37 = 259 travel in 2 bytes each (they
    # were sent in 1, misaligning every reply after the first popcount past 255)
    model = random_model([12, 37, 3], seed=3, act_bits=3)
    hidden, out = model.layers
    low = hidden.thresholds.copy()
    low[:36] = 0                                  # 36 of 37 neurons always at level 7
    weights = out.weights.copy()
    weights[0] = 1                                # class 0 reads every level as it is
    model = dataclasses.replace(model, layers=(dataclasses.replace(hidden, thresholds=low),
                                               dataclasses.replace(out, weights=weights)))
    bits = random_bits(model, 6, seed=1)
    expected = golden.run(model, bits)
    assert expected.popcounts.max() > 255
    with SimTransport(UartTop(model, None, divisor=4)) as transport:
        result = classify_over(transport, model, bits)
    assert np.array_equal(result.popcounts, expected.popcounts)
    assert np.array_equal(result.classes, expected.classes) and result.mismatches == 0


@pytest.mark.parametrize("window", [1, 2])
def test_one_or_two_requests_in_flight_give_the_same_answers(window):
    model = random_model([20, 7, 4], seed=5)
    bits = random_bits(model, 5, seed=9)
    with SimTransport(UartTop(model, [(1, 4), (2, 7)], divisor=3)) as transport:
        result = classify_over(transport, model, bits, window=window)
    assert np.array_equal(result.classes, golden.classify(model, bits))
    assert result.mismatches == 0


@pytest.mark.parametrize(("widths", "bound"), [
    ([80, 6, 4], "request"),        # 10 request bytes, 5 reply bytes
    ([8, 6, 12], "reply"),          # 1 request byte, 13 reply bytes
])
def test_link_rate_is_what_the_gateware_sustains(widths, bound):
    # build prints link_rate as what the UART carries: measure the spacing of replies with two
    # requests in flight, as run-board sends them, in simulated cycles.
    model = random_model(widths, seed=3)
    divisor, count = 4, 8
    top = UartTop(model, None, divisor=divisor)
    protocol = top.protocol()
    longer = max(protocol["request_bytes"], protocol["reply_bytes"])
    assert longer == protocol[f"{bound}_bytes"]
    bits = random_bits(model, count, seed=4)
    ends = []
    with SimTransport(top) as transport:
        sent = 0
        for done in range(count):
            while sent < count and sent - done < 2:
                transport.write(encode_request(bits[sent]))
                sent += 1
            transport.read(top.reply_bytes)
            ends.append(transport.cycles)
    per_image = (ends[-1] - ends[2]) / (count - 3)             # steady state
    rate = link_rate(protocol, 1e6 / divisor)                   # 1 MHz simulated clock
    assert 1e6 / per_image == pytest.approx(rate, rel=0.05)


def test_partial_request_is_dropped_after_frame_timeout():
    model = random_model([24, 6, 4], seed=2)
    bits = random_bits(model, 2, seed=3)
    top = UartTop(model, divisor=4, frame_timeout=30)
    with SimTransport(top) as transport:
        transport.write(encode_request(bits[0])[:2])          # 2 of 3 bytes, then silence
        transport.idle(4 * 30 + 200)
        transport.write(encode_request(bits[1]))
        cls, counts = decode_reply(transport.read(top.reply_bytes), 4, 1)
        with pytest.raises(TransportTimeout):
            transport.read(1)                                 # nothing else comes back
    expected = golden.run(model, bits[1:])
    assert cls == expected.classes[0]
    assert np.array_equal(counts, expected.popcounts[0])


def test_mismatching_reply_is_counted():
    # A transport that answers for a different network: the check must notice.
    model = random_model([16, 6, 4], seed=1)
    other = random_model([16, 6, 4], seed=2)
    bits = random_bits(model, 8, seed=4)
    with SimTransport(UartTop(other, divisor=3)) as transport:
        result = classify_over(transport, model, bits)
    bad = (golden.classify(model, bits) != golden.classify(other, bits)) | np.any(
        golden.run(model, bits).popcounts != golden.run(other, bits).popcounts, axis=1)
    assert bad.any()
    assert result.mismatches == int(bad.sum())


@pytest.mark.parametrize(("k0", "expected"), [(1, 1), (8, 1), (9, 2), (64, 8), (784, 98)])
def test_request_is_ceil_k0_over_8_bytes(k0, expected):
    model = random_model([k0, 2], seed=0)
    assert request_bytes(model) == expected
    assert len(encode_request(np.ones(k0, dtype=np.uint8))) == expected


def test_request_packs_input_bits_lsb_first():
    bits = np.zeros(12, dtype=np.uint8)
    bits[[0, 3, 9, 11]] = 1
    assert encode_request(bits) == bytes([0b00001001, 0b00001010])


@pytest.mark.parametrize(("k_last", "classes", "popcounts", "act_bits", "expected"), [
    (64, 10, True, 1, (11, 1)), (255, 3, True, 1, (4, 1)), (256, 3, True, 1, (7, 2)),
    (64, 10, False, 1, (1, 1)),
    (85, 3, True, 2, (4, 1)), (86, 3, True, 2, (7, 2)),    # 2-bit inputs: up to 3 * K
    (37, 10, True, 3, (21, 2)),                             # 7 * 37 = 259
])
def test_reply_layout(k_last, classes, popcounts, act_bits, expected):
    model = random_model([5, k_last, classes], seed=0, act_bits=act_bits)
    assert model.layers[-1].in_bits == act_bits
    assert reply_layout(model, popcounts) == expected


def test_decode_reply_reads_little_endian_popcounts():
    cls, counts = decode_reply(bytes([2, 0x01, 0x01, 0xFF, 0x00]), 2, 2)
    assert cls == 2
    assert np.array_equal(counts, [257, 255])
    assert decode_reply(b"\x07", 2, 2) == (7, None)
    with pytest.raises(ValueError, match=r"^reply must be 1 or 5 bytes, not 3$"):
        decode_reply(b"\x00\x01\x02", 2, 2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"divisor": 1}, "divisor must be an integer >= 2, not 1"),
    ({"divisor": 4, "frame_timeout": 0},
     "frame_timeout must be a positive integer number of bit times, not 0"),
])
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        UartTop(random_model([4, 2], seed=0), **kwargs)


def test_more_than_256_classes_are_refused():
    with pytest.raises(ValueError, match=r"^the UART top sends the class in one byte: at most "
                                         r"256 classes, not 257$"):
        UartTop(random_model([4, 257], seed=0), divisor=4)


@pytest.mark.parametrize(("widths", "folding", "act_bits"), [([9, 5, 3], None, 1),
                                                             ([10, 6, 4], [(3, 5), (2, 3)], 2)])
def test_8_bit_pixel_inputs_one_byte_each(widths, folding, act_bits):
    model = random_model(widths, seed=5, act_bits=act_bits, input_bits=8)
    assert request_bytes(model) == widths[0]
    pixels = np.random.default_rng(5).integers(0, 256, size=(5, widths[0]), dtype=np.uint8)
    assert encode_request(pixels[0], 8) == pixels[0].tobytes()
    top = UartTop(model, folding, 1, divisor=4)
    with SimTransport(top) as transport:
        result = classify_over(transport, model, pixels)
    expected = golden.run(model, pixels)
    assert np.array_equal(result.classes, expected.classes)
    assert np.array_equal(result.popcounts, expected.popcounts)
    assert result.mismatches == 0
