"""Faults injected into the generated hardware are caught, with the image and layer named.

The golden model always runs the original network. The hardware is generated from a perturbed
copy (one weight bit flipped, one threshold off by one) through ``--hardware-model``, or built
with ``BnnTop``'s ``fault=("drop_ready", 0)`` and stalls on. For the perturbed copies the
first wrong image and the first wrong layer are known in advance from the golden model of the
copy, so the test checks that ``verify`` names exactly those.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

from bnnflow.cli import main
from bnnflow.model import golden
from bnnflow.model.artifact import save


def _with_layer(model, index, **changes):
    layers = list(model.layers)
    layers[index] = replace(layers[index], **changes)
    return replace(model, layers=layers)


def _first_visible(model, candidates, bits):
    """The first perturbed model whose final outputs differ from ``model``'s on ``bits``."""
    want = golden.run(model, bits)
    for perturbed in candidates:
        got = golden.run(perturbed, bits)
        wrong = np.flatnonzero((got.classes != want.classes)
                               | np.any(got.popcounts != want.popcounts, axis=1))
        if wrong.size:
            image = int(wrong[0])
            layers = [j for j, (a, b) in enumerate(zip(want.layer_outputs(),
                                                       got.layer_outputs(), strict=True))
                      if not np.array_equal(a[image], b[image])]
            return perturbed, image, layers[0]
    raise AssertionError("no candidate fault is visible on these inputs")


def flipped_weight(model, bits, layer=1):
    def candidates():
        w = model.layers[layer].weights
        for n in range(w.shape[0]):
            for k in range(w.shape[1]):
                flipped = w.copy()
                flipped[n, k] ^= 1
                yield _with_layer(model, layer, weights=flipped)
    return _first_visible(model, candidates(), bits)


def threshold_off_by_one(model, bits, layer=0):
    def candidates():
        t = model.layers[layer].thresholds
        k = model.layers[layer].in_width
        for n in range(t.shape[0]):
            for delta in (1, -1):
                if 0 <= t[n, 0] + delta <= k + 1:
                    moved = t.copy()
                    moved[n, 0] += delta
                    yield _with_layer(model, layer, thresholds=moved)
    return _first_visible(model, candidates(), bits)


FAULTS = {"flipped_weight": flipped_weight, "threshold_off_by_one": threshold_off_by_one}


def _verify(model_files, simulator, build_root, tmp_path, *extra):
    model_path, inputs_path = model_files
    report = tmp_path / "r.json"
    status = main(["verify", str(model_path), "--sim", simulator, "--inputs", str(inputs_path),
                   "--images", "all", "--stall", "0.3", "--seed", "1", "--report", str(report),
                   "--build-dir", str(build_root), "--quiet", *extra])
    return status, json.loads(report.read_text())


# Each Verilator case costs two builds (the design, then the one with taps): one case there.
@pytest.mark.parametrize(("simulator", "fault"), [
    ("amaranth", "flipped_weight"), ("amaranth", "threshold_off_by_one"),
    ("icarus", "flipped_weight"), ("icarus", "threshold_off_by_one"),
    ("verilator", "threshold_off_by_one"),
])
def test_perturbed_hardware_fails_naming_image_and_layer(fault, simulator, net, model_files,
                                                         input_bits, build_root, tmp_path,
                                                         capsys):
    perturbed, image, layer = FAULTS[fault](net.model, input_bits)
    hw_path = tmp_path / "perturbed.bnn"
    save(perturbed, hw_path)
    status, rep = _verify(model_files, simulator, build_root, tmp_path, "--fold", net.fold,
                          "--pipeline", str(net.pipeline), "--hardware-model", str(hw_path))
    out = capsys.readouterr().out
    assert status == 1
    assert not rep["passed"] and rep["mismatches"] > 0
    first = rep["first_mismatch"]
    assert first["image"] == image
    assert first["layer_index"] == layer
    assert first["layer"] == net.model.layers[layer].name
    want = golden.run(net.model, input_bits[image:image + 1])
    got = golden.run(perturbed, input_bits[image:image + 1])
    assert first["expected"] == {"class": int(want.classes[0]),
                                 "popcounts": want.popcounts[0].tolist()}
    assert first["actual"] == {"class": int(got.classes[0]),
                               "popcounts": got.popcounts[0].tolist()}
    assert f"image {image}" in out and net.model.layers[layer].name in out
    # The timing check is independent of the data path: still exact.
    assert rep["timing_ok"]


# cocotb + Verilator runs the cocotb bench that fails here on Icarus; its fault case is
# test_perturbed_hardware_fails_naming_image_and_layer's (a Verilator build costs 18 s).
@pytest.mark.parametrize("simulator", ["amaranth", "icarus"])
def test_dropped_ready_loses_vectors_and_names_the_next_layer(simulator, net, model_files,
                                                             input_bits, build_root, tmp_path,
                                                             capsys):
    status, rep = _verify(model_files, simulator, build_root, tmp_path,
                          "--fold", net.slow_second_fold, "--fault", "drop_ready:0")
    out = capsys.readouterr().out
    assert status == 1
    assert rep["fault"] == ["drop_ready", 0]
    assert rep["mismatches"] > 0
    first = rep["first_mismatch"]
    # Layer 0 still emits every vector; layer 1 misses the ones it was not ready for.
    assert (first["layer"], first["layer_index"]) == ("fc1", 1)
    image = first["image"]
    want = golden.run(net.model, input_bits[image:image + 1])
    assert first["expected"] == {"class": int(want.classes[0]),
                                 "popcounts": want.popcounts[0].tolist()}
    assert first["actual"] != first["expected"]
    assert f"image {image}" in out and "fc1" in out
