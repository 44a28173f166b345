"""8-bit first layer (--input-bits 8): the pixels encoding, the golden model, training and
exact export."""

import numpy as np
import pytest

from bnnflow.errors import BnnflowError
from bnnflow.model import artifact, conventions, encoding, golden
from bnnflow.model.artifact import InputSpec
from bnnflow.model.random_net import random_model
from bnnflow.model.train import TrainConfig, train_and_export

PIXELS = {"kind": "pixels", "scale": 16.0, "bits": 8}


def test_pixels_encoding_rounds_to_8_bit_levels():
    images = np.array([[0.0, 8.0, 16.0, 0.031, 20.0]])
    assert encoding.encode(PIXELS, images).tolist() == [[0, 128, 255, 0, 255]]
    assert encoding.element_bits(PIXELS) == 8 and encoding.validate(PIXELS) == 1
    spec = InputSpec(width=5, shape=(5,), encoding=PIXELS)
    assert spec.bits == 8 and spec.map_shape is None


@pytest.mark.parametrize(("bits", "message"), [(1, "bits must be an integer in 2..8, not 1"),
                                               (9, "not 9"), ("8", "not '8'")])
def test_pixels_encoding_checks_bits(bits, message):
    with pytest.raises(ValueError, match=message):
        encoding.validate({**PIXELS, "bits": bits})


def test_golden_model_takes_8_bit_inputs(tmp_path):
    model = random_model([9, 5, 3], seed=1, input_bits=8)
    assert model.layers[0].in_bits == 8
    x = np.random.default_rng(0).integers(0, 256, size=(40, 9))
    got = golden.run(model, x).layer_popcounts[0]
    assert np.array_equal(got, conventions.popcount_levels(x, model.layers[0].weights, 8))
    artifact.save(model, tmp_path / "p.bnn")
    again = artifact.load(tmp_path / "p.bnn")
    assert again.input.bits == 8
    assert np.array_equal(golden.run(again, x).popcounts, golden.run(model, x).popcounts)
    with pytest.raises(ValueError, match="8-bit inputs must lie in 0..255"):
        golden.run(model, x + 256)


def test_first_layer_bits_must_match_the_input():
    bits_model = random_model([9, 5, 3], seed=1)
    with pytest.raises(ValueError, match=r"layer 0 \(fc0\) takes 1-bit inputs, but the input "
                                         r"has 8-bit elements"):
        artifact.BnnModel(bits_model.layers,
                          InputSpec(width=9, shape=(9,), encoding=PIXELS))


def test_8_bit_input_training_exports_exactly():
    result = train_and_export(hidden=(24, 16), epochs=2, progress=False, input_bits=8)
    assert result.metrics["agreement"] == 1.0 and result.metrics["input_bits"] == 8
    assert result.model.input.encoding["kind"] == "pixels"
    assert result.model.input.width == 64 and result.model.layers[0].in_bits == 8


def test_input_bits_are_checked():
    with pytest.raises(BnnflowError, match="--input-bits must be 1 or 8, not 4"):
        TrainConfig(input_bits=4).resolved()
    with pytest.raises(BnnflowError, match="give one or the other"):
        TrainConfig(input_bits=8, input_threshold=0.5).resolved()
    assert TrainConfig(preset="cnv-mnist", dataset="mnist5k", input_bits=8).resolved(
        ).input_bits == 8
