import json

import numpy as np

from bnnflow.cli import main
from bnnflow.model import artifact
from bnnflow.model.random_net import random_model


def test_inspect_prints_layers_thresholds_provenance_and_checksum(tmp_path, capsys):
    path = tmp_path / "net.bnn"
    model = random_model([37, 13, 11, 5], seed=2)
    checksum = artifact.save(model, path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert checksum in out.replace("\n", "")
    for text in ("fc0", "fc1", "fc2", "popcount", "random_model", "37 bits"):
        assert text in out
    t = model.layers[0].thresholds
    assert f"{t.min()}..{t.max()}" in out


def test_inspect_json_summary(tmp_path, capsys):
    path = tmp_path / "net.bnn"
    model = random_model([9, 4, 3], seed=0)
    artifact.save(model, path)
    assert main(["inspect", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [entry["out_width"] for entry in info["layers"]] == [4, 3]
    t = model.layers[0].thresholds
    assert info["layers"][0]["threshold_min"] == int(t.min())
    assert info["layers"][0]["always_fire"] == int(np.sum(t <= 0))
    assert info["layers"][1]["output"] == "popcount"
    assert info["provenance"]["seed"] == 0


def test_inspect_lists_conv_pool_and_dense_layers_with_their_shapes(tmp_path, capsys):
    from bnnflow.model.random_net import random_conv_model

    path = tmp_path / "cnn.bnn"
    model = random_conv_model((12, 10, 3), [("conv", 8, 3), ("pool", 2), ("conv", 6, 2, 3),
                                            ("conv", 5, 2, 1, 2), ("dense", 9)], 4, seed=1)
    artifact.save(model, path)
    assert main(["inspect", str(path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in row.strip("│").split("│")] for row in rows]
    assert [c[1:5] for c in cells] == [
        ["conv0", "12x10x3", "10x8x8", "3x3 conv"], ["pool1", "10x8x8", "5x4x8", "2/2 pool"],
        ["conv2", "5x4x8", "4x2x6", "2x3 conv"], ["conv3", "4x2x6", "2x1x5", "2x1/2 conv"],
        ["fc4", "10", "9", "dense"], ["fc5", "9", "4", "popcounts"]]
    assert main(["inspect", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in info["layers"]] == ["binary_conv2d", "maxpool2d", "binary_conv2d",
                                                   "binary_conv2d", "binary_dense",
                                                   "binary_dense"]
    assert info["layers"][2]["kernel"] == [2, 3] and info["layers"][1]["window"] == 2
    assert info["layers"][3]["stride"] == 2 and "stride" not in info["layers"][2]


def test_inspect_shows_the_padding_and_its_code_beside_the_kernel(tmp_path, capsys,
                                                                  monkeypatch):
    from bnnflow.model.random_net import random_conv_model

    monkeypatch.setenv("COLUMNS", "120")           # one line per row
    path = tmp_path / "padded.bnn"
    model = random_conv_model((9, 8, 1), [("conv", 4, 3, 3, 2, 1, 200), ("conv", 3, 3, 3, 1, 2, 1),
                                          ("conv", 2, 2), ("dense", 5)], 3, seed=2, input_bits=8)
    artifact.save(model, path)
    assert main(["inspect", str(path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in row.strip("│").split("│")] for row in rows]
    assert [c[2:5] for c in cells[:3]] == [
        ["9x8x1", "5x4x4", "3x3/2 conv, pad 1 (code 200), 8-bit in"],
        ["5x4x4", "7x6x3", "3x3 conv, pad 2 (code 1)"], ["7x6x3", "6x5x2", "2x2 conv"]]
    assert main(["inspect", "--json", str(path)]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert [(e.get("pad"), e.get("pad_value")) for e in layers[:3]] == [(1, 200), (2, 1),
                                                                        (None, None)]


def test_inspect_shows_a_pixel_levels_table_by_its_range(tmp_path, capsys):
    from bnnflow.model.artifact import BnnModel, DenseLayer, InputSpec

    # Brevitas CNV's input: level 128 is skipped at pixel 128, level 255 starts at 254
    thresholds = [k / 255 for k in range(1, 128)] + [128 / 255] * 2 + \
        [k / 255 for k in range(129, 255)]
    enc = {"kind": "pixel_levels", "scale": 255.0, "bits": 8, "thresholds": thresholds}
    rng = np.random.default_rng(0)
    model = BnnModel([DenseLayer("fc0", rng.integers(0, 2, (4, 6), dtype=np.uint8),
                                 rng.integers(0, 1530, (4, 1)), in_bits=8),
                      DenseLayer("fc1", rng.integers(0, 2, (3, 4), dtype=np.uint8))],
                     InputSpec(width=6, shape=(2, 3), encoding=enc))
    path = tmp_path / "levels.bnn"
    artifact.save(model, path)
    assert main(["inspect", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ('input: 6 8-bit elements, shape (2, 3), encoding {"bits": 8, "kind": '
            '"pixel_levels", "scale": 255.0, "thresholds": "255, pixels 1 to 254"}') in out
    assert main(["inspect", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["input"]["encoding"]["thresholds"] == thresholds


def test_inspect_names_ternary_weights_level_bits_and_the_bits_stored(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")           # one line per row
    path = tmp_path / "kinds.bnn"
    model = random_model([12, 7, 5, 3], seed=0, ternary=True, act_bits=2)
    artifact.save(model, path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    ops = [[c.strip() for c in row.strip("│").split("│")][4] for row in rows]
    assert ops == ["ternary dense, 2-bit out", "ternary dense, 2-bit in/out",
                   "popcounts, 2-bit in"]
    # 12*7 + 7*5 ternary weights of two bits each, 5*3 binary ones
    assert "synapses: 134; weight bits stored: 253 " in " ".join(out.split()) + " "
