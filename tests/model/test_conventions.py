import numpy as np
import pytest

from bnnflow.model import conventions as cv


def test_sign_of_zero_is_plus_one():
    assert np.array_equal(cv.sign_bits([-2.0, -0.0, 0.0, 1e-9, -1e-9]), [0, 1, 1, 1, 0])


def test_bit_one_encodes_plus_one_and_bit_zero_minus_one():
    assert np.array_equal(cv.bits_to_pm1([1, 0, 1]), [1, -1, 1])
    assert np.array_equal(cv.pm1_to_bits([1, -1, 1]), [1, 0, 1])


def test_pm1_to_bits_rejects_other_values():
    with pytest.raises(ValueError, match=r"values must be \+1 or -1 only"):
        cv.pm1_to_bits([1, 0])


@pytest.mark.parametrize("k", [1, 7, 8, 9, 37, 64, 65])
def test_pack_is_lsb_first_and_round_trips(k):
    rng = np.random.default_rng(k)
    bits = rng.integers(0, 2, size=(3, k), dtype=np.uint8)
    packed = cv.pack_bits(bits)
    assert packed.shape == (3, (k + 7) // 8)
    # element i is bit i % 8 of byte i // 8
    for i in range(k):
        assert np.array_equal((packed[:, i // 8] >> (i % 8)) & 1, bits[:, i])
    assert np.array_equal(cv.unpack_bits(packed, k), bits)


@pytest.mark.parametrize(("width", "k"), [(1, 1), (1, 7), (1, 37), (1, 130), (3, 5), (7, 11)])
def test_pack_int_puts_element_i_at_bit_i_times_width(width, k):
    values = np.random.default_rng(k).integers(0, 1 << width, size=k)
    assert cv.pack_int(values, width) == sum(int(v) << (i * width) for i, v in enumerate(values))
    # The same integer whatever the array's shape or integer type.
    assert cv.pack_int(values.astype(np.uint8).reshape(1, k), width) == cv.pack_int(
        values.tolist(), width)


def test_pack_int_lsb_first_examples():
    assert cv.pack_int([1, 0, 1, 1]) == 0b1101
    assert cv.pack_int([3, 0, 5], 3) == 0b101_000_011
    assert cv.pack_int([]) == 0


@pytest.mark.parametrize(("values", "width"), [([2], 1), ([-1], 1), ([8], 3), ([0, -2], 4)])
def test_pack_int_rejects_values_wider_than_the_field(values, width):
    with pytest.raises(ValueError, match=rf"^values must fit in {width} unsigned bit\(s\)$"):
        cv.pack_int(values, width)


@pytest.mark.parametrize("k,n,seed", [(1, 1, 0), (37, 13, 1), (64, 10, 2), (100, 3, 3)])
def test_dot_equals_two_popcount_minus_k(k, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(11, k), dtype=np.uint8)
    w = rng.integers(0, 2, size=(n, k), dtype=np.uint8)
    p = cv.popcount_xnor(x, w)
    dot = cv.bits_to_pm1(x) @ cv.bits_to_pm1(w).T
    assert np.array_equal(cv.dot_from_popcount(p, k), dot)
    assert np.array_equal(cv.popcount_from_dot(dot, k), p)
    # XNOR popcount counted the slow way
    assert np.array_equal(p, (x[:, None, :] == w[None, :, :]).sum(-1))


def test_popcount_xnor_rejects_mismatched_widths():
    with pytest.raises(ValueError, match=r"same K, not \(2, 3\) and \(4, 5\)"):
        cv.popcount_xnor(np.zeros((2, 3)), np.zeros((4, 5)))


def test_popcount_from_dot_rejects_odd_parity():
    with pytest.raises(ValueError, match="must be even"):
        cv.popcount_from_dot([1], 4)


def test_fire_when_popcount_reaches_threshold():
    k = 5
    popcounts = np.arange(k + 1)[:, None].repeat(4, axis=1)
    thresholds = np.array([[0], [3], [k], [k + 1]])
    out = cv.fire(popcounts, thresholds)
    assert np.array_equal(out[:, 0], np.ones(k + 1))           # T = 0 always fires
    assert np.array_equal(out[:, 1], (np.arange(k + 1) >= 3))  # popcount >= T, equality fires
    assert np.array_equal(out[:, 2], np.arange(k + 1) == k)    # only the full popcount
    assert np.array_equal(out[:, 3], np.zeros(k + 1))          # T = K + 1 never fires


def test_multibit_activation_counts_thresholds_passed():
    popcounts = np.array([[0, 4, 9]])
    thresholds = np.array([[2, 5, 8]] * 3)
    assert np.array_equal(cv.fire(popcounts, thresholds), [[0, 1, 3]])


def test_argmax_takes_lowest_index_on_ties():
    scores = np.array([[3, 7, 7, 1], [5, 5, 5, 5], [0, 0, 0, 1]])
    assert np.array_equal(cv.argmax_lowest(scores), [1, 0, 3])
