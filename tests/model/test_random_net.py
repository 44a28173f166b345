import numpy as np
import pytest

from bnnflow.model.random_net import random_model


def test_same_seed_same_network():
    a, b = random_model([20, 7, 3], seed=4), random_model([20, 7, 3], seed=4)
    assert all(np.array_equal(x.weights, y.weights) for x, y in zip(a.layers, b.layers,
                                                                      strict=True))
    c = random_model([20, 7, 3], seed=5)
    assert not np.array_equal(a.layers[0].weights, c.layers[0].weights)


def test_widths_and_threshold_ranges():
    model = random_model([37, 13, 11, 5], seed=1)
    assert model.widths == [37, 13, 11, 5]
    for layer in model.layers[:-1]:
        assert layer.thresholds.shape == (layer.out_width, 1)
        assert layer.thresholds.min() >= 0 and layer.thresholds.max() <= layer.in_width + 1
    assert model.layers[-1].is_output


def test_edge_thresholds_appear_across_seeds():
    seen = set()
    for seed in range(20):
        t = random_model([10, 8, 2], seed=seed).layers[0].thresholds
        seen.update({0, 10, 11} & set(t.ravel().tolist()))
    assert seen == {0, 10, 11}


@pytest.mark.parametrize("widths", [[5], [5, 0], [4, -1, 2], [3.0, 2]])
def test_bad_widths_are_rejected(widths):
    with pytest.raises(ValueError, match="widths must be at least two positive integers"):
        random_model(widths)
