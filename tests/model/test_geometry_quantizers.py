"""The weight quantizers of the geometry measures and their Gaussian limit angles."""

import numpy as np
import pytest
import torch

from bnnflow.model import geometry_quantizers as quantizers
from bnnflow.model.layers import ternary_ste


def test_ternary_limit_angle_is_smaller_than_binary():
    assert quantizers.QUANTIZERS["ternary"].theory_angle_deg < quantizers.THEORY_ANGLE_DEG - 5


def test_binary_quantizer_maps_zero_to_plus_one():
    assert np.array_equal(quantizers.QUANTIZERS["binary"].quantize(np.array([[-0.5, 0.0, 2.0]])),
                          np.array([[-1.0, 1.0, 1.0]]))


def test_ternary_quantizer_zeroes_small_weights_per_neuron():
    w = np.array([[-1.0, 0.1, 0.9, -0.05], [0.0, 0.0, 0.0, 0.0]])
    # Row 0: 0.7 * mean|w| = 0.35. Row 1: all zero, threshold 0, which |w| reaches, so the
    # signs remain (sign(0) = +1): the rule of TernaryLinear, |w| >= threshold is live.
    assert np.array_equal(quantizers.QUANTIZERS["ternary"].quantize(w),
                          np.array([[-1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))


def test_balanced_ternary_quantizer_is_the_training_rule_and_zeroes_a_third():
    w = torch.empty(5, 301).uniform_(-1, 1, generator=torch.Generator().manual_seed(3))
    want = ternary_ste(w, 0.7, "balanced").numpy()
    got = quantizers.QUANTIZERS["ternary-balanced"].quantize(w.numpy())
    assert np.array_equal(got, want)
    assert np.array_equal((got == 0).sum(axis=1), [100] * 5)
    # Gaussian theory: between the binary angle and the 0.7 mean|w| rule's smaller one.
    angles = [quantizers.QUANTIZERS[q].theory_angle_deg for q in ("ternary", "ternary-balanced")]
    assert angles[0] < angles[1] < quantizers.THEORY_ANGLE_DEG


def test_unknown_quantizer_names_the_known_ones():
    with pytest.raises(ValueError, match=r"^quantizer must be one of \['binary', 'ternary', "
                                         r"'ternary-balanced'\], not 'quad'$"):
        quantizers.quantizer("quad")
