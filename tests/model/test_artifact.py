import io
import json
import zipfile

import numpy as np
import pytest

from bnnflow.cli import main
from bnnflow.errors import ArtifactError
from bnnflow.model import artifact, golden
from bnnflow.model.artifact import BnnModel, DenseLayer, InputSpec
from bnnflow.model.random_net import random_model


@pytest.fixture
def model():
    return random_model([37, 13, 11, 5], seed=3)


@pytest.fixture
def saved(tmp_path, model):
    path = tmp_path / "net.bnn"
    artifact.save(model, path)
    return path


def rewrite(src, dst, manifest_edit=None, drop=(), replace=None, fix_checksum=True):
    """Copy an artifact, editing its manifest and members, optionally re-sealing the checksum."""
    with zipfile.ZipFile(src) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    if manifest_edit:
        manifest_edit(manifest)
    for name, data in (replace or {}).items():
        members[name] = data
    if fix_checksum:
        manifest["checksum"] = artifact.model_checksum(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            if name not in drop:
                zf.writestr(name, data)
    return dst


def npy(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def reseal_array(manifest, name, data):
    import hashlib
    manifest["arrays"][name]["sha256"] = hashlib.sha256(data).hexdigest()


def test_round_trip_keeps_every_bit(saved, model):
    loaded = artifact.load(saved)
    assert loaded.widths == model.widths == [37, 13, 11, 5]
    for a, b in zip(loaded.layers, model.layers, strict=True):
        assert np.array_equal(a.weights, b.weights)
        assert (a.thresholds is None) == (b.thresholds is None)
        if a.thresholds is not None:
            assert np.array_equal(a.thresholds, b.thresholds)
    x = np.random.default_rng(0).integers(0, 2, size=(30, 37), dtype=np.uint8)
    assert np.array_equal(golden.run(loaded, x).popcounts, golden.run(model, x).popcounts)
    assert loaded.provenance == model.provenance
    assert loaded.classes == ("0", "1", "2", "3", "4")


def test_save_is_reproducible_byte_for_byte(tmp_path, model):
    a, b = tmp_path / "a.bnn", tmp_path / "b.bnn"
    assert artifact.save(model, a) == artifact.save(model, b)
    assert a.read_bytes() == b.read_bytes()


def test_manifest_is_self_describing(saved):
    with zipfile.ZipFile(saved) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["format"] == "bnnflow-model"
    assert manifest["format_version"] == artifact.FORMAT_VERSION
    assert [entry["kind"] for entry in manifest["layers"]] == ["binary_dense"] * 3
    assert [entry["output"] for entry in manifest["layers"]] == ["activation"] * 2 + ["popcount"]
    assert manifest["layers"][0]["in_width"] == 37
    assert manifest["layers"][0]["activation_bits"] == 1
    assert manifest["arrays"]["fc0/weights.npy"]["shape"] == [13, 5]
    assert manifest["checksum"].startswith("sha256:")


def corruptions():
    def version(m):
        m["format_version"] = 99

    def shape(m):
        m["layers"][1]["out_width"] = 12

    def padding(m):
        m["layers"][1]["in_width"] = 12
        m["layers"][0]["out_width"] = 12

    def kind(m):
        m["layers"][0]["kind"] = "conv2d_lut"

    def provenance(m):
        m["provenance"]["seed"] = 12345

    def encoding(m):
        m["input"]["encoding"] = {"kind": "gray", "scale": 1.0}

    def levels(m):
        m["input"]["encoding"] = {"kind": "thermometer", "scale": 1.0, "thresholds": [0.2, 0.6]}

    def provenance_text(m):
        m["provenance"] = "str"

    def classes_text(m):
        m["classes"] = "0123"

    return {
        "unknown version": (dict(manifest_edit=version), r"unknown format version 99"),
        "missing array": (dict(drop=("fc1/weights.npy",)),
                          r"missing array 'fc1/weights.npy': the archive does not hold it"),
        "shape mismatch": (dict(manifest_edit=shape),
                           r"layer 1: weights must be uint8 of shape \(12, 2\) for 12 neurons "
                           r"of 13 inputs, not uint8 \(11, 2\)"),
        "non-zero padding": (dict(manifest_edit=padding),
                             r"layer 0: weights must be uint8 of shape \(12, 5\)"),
        "unknown kind": (dict(manifest_edit=kind), r"unknown layer kind 'conv2d_lut'"),
        "unknown input encoding": (dict(manifest_edit=encoding),
                                   r"unknown input encoding 'gray' \(this bnnflow knows "
                                   r"threshold, thermometer, pixels, pixel_levels\); "
                                   r"upgrade bnnflow"),
        "encoding does not match width": (dict(manifest_edit=levels),
                                          r"input width 37 does not match shape \[37\] with 2 "
                                          r"bit\(s\) per pixel"),
        "provenance not an object": (dict(manifest_edit=provenance_text),
                                     r"manifest: field 'provenance' must be an object, not str"),
        "classes not a list": (dict(manifest_edit=classes_text),
                               r"manifest: field 'classes' must be a list, not str"),
        "checksum mismatch (manifest)": (dict(manifest_edit=provenance, fix_checksum=False),
                                         r"checksum mismatch in manifest.json"),
        "checksum mismatch (array)": (
            dict(replace={"fc0/weights.npy": npy(np.zeros((13, 5), dtype=np.uint8))}),
            r"checksum mismatch for array 'fc0/weights.npy'"),
    }


@pytest.mark.parametrize("case", list(corruptions()))
def test_corrupt_artifacts_give_one_line_naming_file_and_problem(tmp_path, saved, case):
    kwargs, message = corruptions()[case]
    bad = rewrite(saved, tmp_path / "bad.bnn", **kwargs)
    with pytest.raises(ArtifactError, match=message) as info:
        artifact.load(bad)
    text = str(info.value)
    assert text.startswith(str(bad) + ": ")
    assert "\n" not in text


def test_threshold_out_of_range_is_rejected(tmp_path, saved):
    data = npy(np.full((13, 1), 39, dtype=np.int32))  # K = 37 allows [0, 38]

    def edit(m):
        reseal_array(m, "fc0/thresholds.npy", data)

    bad = rewrite(saved, tmp_path / "bad.bnn", manifest_edit=edit,
                  replace={"fc0/thresholds.npy": data})
    with pytest.raises(ArtifactError, match=r"layer 0: threshold out of range: values must lie "
                                            r"in \[0, 38\] for 37 inputs, found \[39, 39\]"):
        artifact.load(bad)


def test_truncated_file_is_rejected(tmp_path, saved):
    bad = tmp_path / "cut.bnn"
    bad.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=r"not a zip archive or truncated"):
        artifact.load(bad)


def test_a_device_is_refused_without_reading_it():
    # /dev/zero would be read without end by the zip reader
    with pytest.raises(ArtifactError, match=r"^/dev/zero: is not a regular file, not a .bnn "
                                            r"model file$"):
        artifact.load("/dev/zero")


def test_non_zip_file_is_rejected(tmp_path):
    bad = tmp_path / "model.bnn"
    bad.write_text("hello")
    with pytest.raises(ArtifactError, match=r"model.bnn: not a bnnflow model: not a zip"):
        artifact.load(bad)


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(ArtifactError, match=r"no such file \(train one with 'bnnflow train'\)"):
        artifact.load(tmp_path / "nope.bnn")


def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path, saved, capsys):
    bad = rewrite(saved, tmp_path / "bad.bnn", drop=("fc2/weights.npy",))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {bad}: missing array 'fc2/weights.npy'")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_failed_save_leaves_nothing_on_disk(tmp_path, model, monkeypatch):
    target = tmp_path / "out.bnn"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(artifact, "_npy_bytes", boom)
    with pytest.raises(OSError, match="disk full"):
        artifact.save(model, target)
    assert list(tmp_path.iterdir()) == []


def test_save_replaces_an_existing_file_only_when_complete(tmp_path, model, monkeypatch):
    target = tmp_path / "out.bnn"
    artifact.save(model, target)
    original = target.read_bytes()
    monkeypatch.setattr(artifact, "_npy_bytes", lambda a: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        artifact.save(random_model([4, 3], seed=9), target)
    assert target.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["out.bnn"]


@pytest.mark.parametrize("layers,message", [
    ([DenseLayer("a", np.ones((3, 4), np.uint8), np.ones((3, 1), np.int64)),
      DenseLayer("b", np.ones((2, 5), np.uint8))], "layer 1 .b. has 5 inputs but receives 3"),
    ([DenseLayer("a", np.ones((3, 4), np.uint8))] * 2, "only the last layer emits popcounts"),
    ([DenseLayer("a", np.ones((3, 4), np.uint8), np.ones((3, 1), np.int64))],
     "only the last layer emits popcounts, and it must"),
    ([], "at least one layer"),
])
def test_model_validation(layers, message):
    with pytest.raises(ValueError, match=message):
        BnnModel(layers, InputSpec(width=4, shape=(4,)))


def test_an_artifact_written_before_conv_layers_existed_still_loads(tmp_path):
    """``data/dense_v1_a79cb09.bnn``: ``random_model([37, 13, 11, 5], seed=3)`` saved by the
    code of commit a79cb09, before the conv and pool kinds; it loads, runs and is written back
    byte for byte."""
    from pathlib import Path

    old = Path(__file__).with_name("data") / "dense_v1_a79cb09.bnn"
    model = artifact.load(old)
    fresh = random_model([37, 13, 11, 5], seed=3)
    x = np.random.default_rng(0).integers(0, 2, (20, 37), dtype=np.uint8)
    assert np.array_equal(golden.run(model, x).popcounts, golden.run(fresh, x).popcounts)
    checksum = artifact.save(model, tmp_path / "again.bnn")
    assert checksum == "sha256:dd060f6444e577f54f11124bbcd88741177bfe5d096c589a19d5c1bb35d8f78b"
    assert (tmp_path / "again.bnn").read_bytes() == old.read_bytes()
