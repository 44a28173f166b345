"""The serial transport over a pseudo-terminal; a fake board answers from the golden model."""

import os
import threading

import numpy as np
import pytest

from bnnflow.boards.host import SerialTransport, TransportTimeout, classify_over, encode_request
from bnnflow.boards.uart_top import reply_layout, request_bytes
from bnnflow.model import golden
from bnnflow.model.random_net import random_model


def fake_board(fd, model, count, popcounts, wrong=()):
    """Read ``count`` requests from ``fd`` and answer each like the gateware would."""
    size = request_bytes(model)
    _, per = reply_layout(model, popcounts)
    buffer = b""
    for index in range(count):
        while len(buffer) < size:
            buffer += os.read(fd, 64)
        request, buffer = buffer[:size], buffer[size:]
        bits = np.unpackbits(np.frombuffer(request, dtype=np.uint8),
                             bitorder="little")[:model.input.width]
        result = golden.run(model, bits)
        cls = int(result.classes[0]) ^ (1 if index in wrong else 0)
        reply = bytes([cls])
        if popcounts:
            reply += b"".join(int(p).to_bytes(per, "little") for p in result.popcounts[0])
        os.write(fd, reply)


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


@pytest.mark.parametrize("popcounts", [True, False])
def test_serial_transport_round_trip(pty_pair, popcounts):
    master, port = pty_pair
    model = random_model([21, 6, 4], seed=8)
    bits = np.random.default_rng(2).integers(0, 2, size=(7, 21), dtype=np.uint8)
    board = threading.Thread(target=fake_board, args=(master, model, 7, popcounts, {3}))
    board.start()
    with SerialTransport(port) as transport:
        result = classify_over(transport, model, bits, popcounts=popcounts)
    board.join(timeout=5)
    expected = golden.classify(model, bits)
    assert np.array_equal(np.delete(result.classes, 3), np.delete(expected, 3))
    assert result.classes[3] == expected[3] ^ 1
    assert result.mismatches == 1


def test_silent_board_times_out_with_a_hint(pty_pair):
    _, port = pty_pair
    with SerialTransport(port) as transport:
        transport.write(encode_request(np.zeros(8, dtype=np.uint8)))
        with pytest.raises(TransportTimeout, match=rf"^serial {port}: got 0 of 3 reply bytes "
                                                   r"within 0.3 s; check that the board runs"):
            transport.read(3, timeout=0.3)
