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
    assert f"[{t.min()}, {t.max()}]" in out


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
