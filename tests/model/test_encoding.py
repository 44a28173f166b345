import numpy as np
import pytest

from bnnflow.model import artifact, encoding, golden
from bnnflow.model.artifact import BnnModel, DenseLayer, InputSpec

THERMO = {"kind": "thermometer", "scale": 16.0, "thresholds": [0.25, 0.5, 0.75]}


def test_threshold_kind_is_one_bit_per_pixel_and_sign_of_zero_is_plus_one():
    enc = encoding.make_encoding(16.0, 0.5)
    assert enc == {"kind": "threshold", "scale": 16.0, "threshold": 0.5}
    # 8/16 is exactly the threshold: +1 (bit 1), as sign(0) = +1.
    assert np.array_equal(encoding.encode(enc, [[0, 7, 8, 16]]), [[0, 0, 1, 1]])


def test_thermometer_is_level_major_and_monotone():
    enc = encoding.make_encoding(16.0, (0.25, 0.5, 0.75))
    assert enc == THERMO
    bits = encoding.encode(enc, [[0, 4, 8, 12, 16, 3]])
    # level 0 (>= 4), level 1 (>= 8), level 2 (>= 12), each over the six pixels
    assert np.array_equal(bits, [[0, 1, 1, 1, 1, 0,
                                  0, 0, 1, 1, 1, 0,
                                  0, 0, 0, 1, 1, 0]])


@pytest.mark.parametrize("seed", range(3))
def test_thermometer_bits_count_the_thresholds_each_pixel_reaches(seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 17, (20, 8, 8))
    bits = encoding.encode(THERMO, images).reshape(20, 3, 64)
    reached = (images.reshape(20, 1, 64) / 16.0 >= np.array([0.25, 0.5, 0.75])[None, :, None])
    assert np.array_equal(bits, reached.astype(np.uint8))
    # a thermometer: a pixel's bits are 1 for a prefix of the levels
    assert np.all(np.diff(bits.astype(int), axis=1) <= 0)


@pytest.mark.parametrize("bad, message", [
    ("threshold", "input encoding must be a dict, not 'threshold'"),
    ({"kind": "gray"}, "unknown input encoding 'gray'"),
    ({"kind": "threshold", "scale": 0, "threshold": 0.5},
     "input encoding scale must be a positive number, not 0"),
    ({"kind": "threshold", "scale": 1.0, "threshold": "x"},
     "input encoding threshold must be a number, not 'x'"),
    ({"kind": "thermometer", "scale": 1.0, "thresholds": [0.5]},
     "thermometer thresholds must be a list of 2 to 16 numbers, not \\[0.5\\]"),
    ({"kind": "thermometer", "scale": 1.0, "thresholds": [0.5, 0.25]},
     "thermometer thresholds must be strictly ascending, not \\[0.5, 0.25\\]"),
])
def test_bad_encodings_are_rejected_with_what_was_given(bad, message):
    with pytest.raises(ValueError, match=message):
        encoding.validate(bad)


def test_thermometer_artifact_round_trips_and_golden_encodes_with_it(tmp_path):
    rng = np.random.default_rng(1)
    w0 = rng.integers(0, 2, (5, 3 * 4), dtype=np.uint8)
    t0 = rng.integers(0, 14, (5, 1))
    w1 = rng.integers(0, 2, (3, 5), dtype=np.uint8)
    model = BnnModel([DenseLayer("fc0", w0, t0), DenseLayer("fc1", w1)],
                     InputSpec(width=12, shape=(2, 2), encoding=THERMO))
    path = tmp_path / "t.bnn"
    artifact.save(model, path)
    loaded = artifact.load(path)
    assert loaded.input.encoding == THERMO and loaded.input.levels == 3
    images = rng.integers(0, 17, (30, 2, 2))
    bits = encoding.encode(THERMO, images)
    assert np.array_equal(golden.run_images(loaded, images).classes,
                          golden.classify(loaded, bits))


def test_input_width_must_match_levels_times_pixels():
    spec = InputSpec(width=8, shape=(2, 2), encoding=THERMO)
    with pytest.raises(ValueError, match=r"input width 8 does not match shape \[2, 2\] with 3 "
                                         r"bit\(s\) per pixel"):
        spec.check()
    with pytest.raises(ValueError, match="images must have 2 pixels each, not 4"):
        InputSpec(width=6, shape=(2,), encoding=THERMO).encode(np.zeros((1, 4)))
