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


#: Brevitas CNV's 8-bit input on pixels 0..255 (``round(128 * (2 p / 255 - 1))``, clipped to
#: 127, plus 128): the level of 0 is skipped between pixels 127 and 128, and 255 clips.
CNV_LEVELS = np.array([p if p < 128 else min(p + 1, 255) for p in range(256)])


def _first_reached(levels, full):
    return [float(np.argmax(levels >= k)) / full if np.any(levels >= k) else (full + 1) / full
            for k in range(1, 256)]


def test_pixel_levels_count_the_thresholds_each_pixel_reaches():
    enc = {"kind": "pixel_levels", "scale": 255.0, "bits": 8,
           "thresholds": _first_reached(CNV_LEVELS, 255.0)}
    assert encoding.validate(enc) == 1 and encoding.element_bits(enc) == 8
    pixels = np.arange(256).reshape(1, 256)
    assert np.array_equal(encoding.encode(enc, pixels)[0], CNV_LEVELS)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 4, 4, 3))
    assert np.array_equal(encoding.encode(enc, images), CNV_LEVELS[images.reshape(5, -1)])
    # the pixels kind is the table of its own rounding
    ramp = {"kind": "pixels", "scale": 16.0, "bits": 4}
    table = {**ramp, "kind": "pixel_levels",
             "thresholds": [(k - 0.5) / 15 for k in range(1, 16)]}
    grey = np.arange(17).reshape(1, 17)
    assert np.array_equal(encoding.encode(table, grey), encoding.encode(ramp, grey))


@pytest.mark.parametrize("bad, message", [
    ({"kind": "pixel_levels", "scale": 1.0, "bits": 2, "thresholds": [0.1, 0.2]},
     r"pixel_levels thresholds must be a list of 3 numbers \(2\*\*bits - 1\), not 2 values"),
    ({"kind": "pixel_levels", "scale": 1.0, "bits": 2},
     r"pixel_levels thresholds must be a list of 3 numbers \(2\*\*bits - 1\), not None"),
    ({"kind": "pixel_levels", "scale": 1.0, "bits": 2, "thresholds": [0.1, 0.3, 0.2]},
     r"pixel_levels thresholds must not decrease, but threshold 3 \(0.2\) is below threshold "
     r"2 \(0.3\)"),
    ({"kind": "pixel_levels", "scale": 1.0, "bits": 9, "thresholds": []},
     "pixel_levels encoding bits must be an integer in 2..8, not 9"),
])
def test_bad_pixel_levels_are_rejected_with_what_was_given(bad, message):
    with pytest.raises(ValueError, match=message):
        encoding.validate(bad)


def test_pixel_levels_artifact_round_trips_and_golden_encodes_with_it(tmp_path):
    enc = {"kind": "pixel_levels", "scale": 255.0, "bits": 8,
           "thresholds": _first_reached(CNV_LEVELS, 255.0)}
    rng = np.random.default_rng(2)
    w0 = rng.integers(0, 2, (4, 6), dtype=np.uint8)
    t0 = rng.integers(0, 255 * 6, (4, 1))
    w1 = rng.integers(0, 2, (3, 4), dtype=np.uint8)
    model = BnnModel([DenseLayer("fc0", w0, t0, in_bits=8), DenseLayer("fc1", w1)],
                     InputSpec(width=6, shape=(1, 2, 3), encoding=enc))
    path = tmp_path / "levels.bnn"
    artifact.save(model, path)
    loaded = artifact.load(path)
    assert loaded.input.encoding == enc and loaded.input.bits == 8
    images = rng.integers(0, 256, (40, 1, 2, 3))
    assert np.array_equal(golden.run_images(loaded, images).classes,
                          golden.classify(loaded, CNV_LEVELS[images.reshape(40, -1)]))
