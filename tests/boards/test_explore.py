"""``bnnflow explore``: the sweep plan, run keys, cached records, reports, and real syntheses
on a local cluster and on a cluster given with --scheduler."""

import json

import pytest

from bnnflow import dask_pool
from bnnflow.boards import explore
from bnnflow.boards.explore import ExploreError, Run, Sweep, parse_int_list, parse_targets
from bnnflow.boards.explore_report import markdown, pareto_front, write_reports
from bnnflow.cli import main
from bnnflow.model.artifact import save
from bnnflow.model.random_net import random_model

FIELDS = ("target", "folding", "ii", "pipeline", "seed", "placed", "lut4", "ff", "bram",
          "fmax_mhz", "images_per_second", "seconds", "error")


@pytest.fixture(scope="module")
def tiny():
    return random_model([16, 8, 4], seed=0)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory, tiny):
    path = tmp_path_factory.mktemp("model") / "tiny.bnn"
    save(tiny, path)
    return path


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker cluster of its own, reached by address like a remote one."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=":0") as cluster:
        yield cluster


@pytest.mark.parametrize(("text", "minimum", "values"), [
    ("1,4,16", 1, [1, 4, 16]), ("4, 4,1", 1, [4, 1]), ("0,2", 0, [0, 2])])
def test_int_lists_are_parsed_in_order_without_repeats(text, minimum, values):
    assert parse_int_list(text, "--ii", minimum) == values


@pytest.mark.parametrize("text", ["", "1,,4", "4,x", "-1", "0"])
def test_a_bad_ii_list_names_the_option(text):
    with pytest.raises(ExploreError, match=rf"^--ii must be a comma-separated list of "
                                           rf"integers >= 1, like 1,4,16, not '{text}'$"):
        parse_int_list(text, "--ii", 1)


def test_unknown_targets_are_named():
    assert parse_targets("ecp5-85k, ice40-up5k") == ["ecp5-85k", "ice40-up5k"]
    with pytest.raises(ExploreError, match=r"^--targets must name targets among ice40-up5k, "
                                           r"ice40-hx8k, ecp5-25k, ecp5-85k, not "
                                           r"'ice40-up5k,xc7' \(unknown: xc7\)$"):
        parse_targets("ice40-up5k,xc7")


def test_the_plan_crosses_targets_foldings_pipelines_and_seeds(tiny):
    runs, notes = explore.plan_runs(tiny, ["ice40-up5k", "ecp5-25k"], [1, 4, 1000, 2000],
                                    [0, 2], [1, 2, 3])
    # II 1000 and 2000 both give one synapse per cycle: the same design, one run.
    assert notes == ["II 2000 gives the folding of II 1000 (1x1,1x1, II 128): run once"]
    foldings = [("auto", 1, "8x16,4x8"), ("auto", 4, "2x16,1x8"), ("auto", 1000, "1x1,1x1"),
                ("fit", None, None)]
    assert len(runs) == 2 * len(foldings) * 2 * 3
    assert {(r.fold, r.ii_requested, r.folding) for r in runs} == set(foldings)
    assert runs[0] == Run("ice40-up5k", "auto", 1, "8x16,4x8", 0, 1)
    assert runs[-1] == Run("ecp5-25k", "fit", None, None, 2, 3)
    assert runs[-1].label == "ecp5-25k fit p2 s3"


def test_keys_change_with_what_decides_the_result_only():
    run = Run("ice40-up5k", "auto", 4, "2x16,1x8", 0, 1)
    tools = {"yosys": "1", "nextpnr-ice40": "2"}
    key = explore.run_key("sha256:a", run, {"freq_mhz": None, "timeout_minutes": 5}, tools)
    assert key == explore.run_key("sha256:a", Run("ice40-up5k", "auto", 8, "2x16,1x8", 0, 1),
                                  {"freq_mhz": None, "timeout_minutes": 30}, tools)
    others = [explore.run_key("sha256:b", run, {}, tools),
              explore.run_key("sha256:a", Run("ice40-up5k", "auto", 4, "2x16,1x8", 0, 2), {},
                              tools),
              explore.run_key("sha256:a", run, {"freq_mhz": 30.0}, tools),
              explore.run_key("sha256:a", run, {}, {**tools, "yosys": "1.1"})]
    assert len({key, *others}) == 5


def _record(key, target, lut4, ips, status="placed", **kw):
    return {"key": key, "target": target, "fold": "auto", "ii_requested": 4, "folding": "1x1",
            "ii": 4, "pipeline": 0, "seed": 1, "status": status, "placed": status == "placed",
            "lut4": lut4, "ff": 10, "bram": 0, "fmax_mhz": 50.0 if ips else None,
            "images_per_second": ips, "latency": 9, "latency_us": 0.18, "seconds": 3.0,
            "error": kw.get("error"), "cached": kw.get("cached", False)}


def test_the_pareto_front_keeps_runs_no_other_beats_on_both_axes():
    records = [_record("a", "t", 100, 1e5), _record("b", "t", 200, 5e5),
               _record("c", "t", 250, 4e5), _record("d", "t", 200, 5e5),
               _record("e", "t", 300, 9e5), _record("f", "t", 90, None, "not_placed")]
    assert pareto_front(records) == {"a", "b", "d", "e"}


def test_reports_have_a_table_per_target_and_a_png_each(tmp_path):
    records = [_record("a", "ice40-up5k", 100, 1e5), _record("b", "ice40-up5k", 200, 5e5),
               _record("c", "ice40-up5k", None, None, "timeout",
                       error="stopped after the time limit of 1 minutes"),
               _record("d", "ecp5-25k", None, None, "not_placed", error="too big")]
    header = {"model": "m.bnn", "model_checksum": "sha256:x", "tools": {"yosys": "1"},
              "options": {"targets": ["ice40-up5k", "ecp5-25k"], "ii": [4], "fit": False,
                          "pipeline": [0], "seeds": [1], "freq_mhz": None,
                          "timeout_minutes": 1}}
    paths = write_reports(tmp_path, header, records)
    assert [p.name for p in paths] == ["results.md", "pareto_ice40-up5k.png",
                                       "pareto_ecp5-25k.png"]
    for png in paths[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "results.md").read_text()
    assert text == markdown(header, records)
    assert "- 4 runs: 2 placed, 1 not placed, 1 timeout, 0 failed; 0 from the cache" in text
    assert "| auto | 4 | 1x1 | 4 | 0 | 1 | placed | 200 | 10 | 0 | 50.0 | 500,000 | " \
           "9 / 0.18 | yes | 3 |" in text
    assert ("- auto 1x1 II 4 p0 s1: timeout: stopped after the time limit of 1 minutes"
            in text)
    assert "Pareto front (LUT4 -> images/s): 100 -> 100,000 (1x1, p0), 200 -> 500,000" in text


def test_a_failed_run_is_a_record_with_its_error_and_is_cached(tmp_path):
    sweep = Sweep(tmp_path, {"model_checksum": "sha256:x", "tools": {}, "options": {}})
    run = Run("ice40-up5k", "auto", 4, "2x16,1x8", 0, 1)
    record = sweep.record("k1", run, {"ok": False, "timeout": True, "seconds": 60.0,
                                      "error": "stopped after the time limit of 1 minutes"})
    assert {k: record[k] for k in ("status", "placed", "error", "folding", "lut4", "cached")} \
        == {"status": "timeout", "placed": False, "lut4": None, "cached": False,
            "error": "stopped after the time limit of 1 minutes", "folding": "2x16,1x8"}
    assert sweep.cached("k1") == {**record, "cached": True}
    assert sweep.cached("k2") is None
    (tmp_path / "runs" / "k3.json").write_text('{"key": "k3", "trunc')
    assert sweep.cached("k3") is None
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["k1.json", "k3.json"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--ii", "4,x"], "error: --ii must be a comma-separated list of integers >= 1, like "
                      "1,4,16, not '4,x'"),
    (["--targets", "ice40-up5k,nope"], "error: --targets must name targets among ice40-up5k, "
                                       "ice40-hx8k, ecp5-25k, ecp5-85k, not "
                                       "'ice40-up5k,nope' (unknown: nope)"),
    (["--pipeline", "-1"], "error: --pipeline must be a comma-separated list of integers >= 0, "
                           "like 1,4,16, not '-1'"),
    (["--seeds", "0"], "error: --seeds must be a positive integer, not 0"),
    (["--freq", "-10"], "error: --freq must be a clock in MHz above 0, such as 48, not -10"),
    (["--freq", "nan"], "error: --freq must be a clock in MHz above 0, such as 48, not nan"),
    (["--scheduler", "localhost:8786"], "error: --scheduler must be an address like "
                                        "tcp://HOST:8786, not 'localhost:8786'"),
    (["--scheduler", "tcp://127.0.0.1:9"], "error: cannot reach the Dask scheduler at "
                                           "tcp://127.0.0.1:9 ("),
    (["--out", "/proc/nope"], "error: cannot write /proc/nope: cannot create folders in /proc"),
])
def test_bad_input_is_one_line_and_exit_status_2(tiny_file, tmp_path, capsys, monkeypatch,
                                                 argv, message):
    monkeypatch.setattr(dask_pool, "CONNECT_TIMEOUT", 1)
    options = {"--targets": "ice40-up5k", "--ii": "4", "--out": str(tmp_path / "out")}
    for name, value in zip(argv[::2], argv[1::2], strict=True):
        options[name] = value
    status = main(["explore", str(tiny_file), "--no-fit",
                   *(x for item in options.items() for x in item)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith(message)


def _fields(path):
    records = json.loads((path / "results.json").read_text())["records"]
    return [{k: r[k] for k in FIELDS if k != "seconds"} for r in records], records


def test_a_sweep_runs_the_tools_and_a_second_run_is_all_cached(tiny_file, tmp_path, cluster,
                                                               capsys):
    # Real Yosys and nextpnr: the tiny network at II 4 on the UP5K (a few seconds), once on a
    # local cluster and once on a running cluster given by address.
    argv = ["explore", str(tiny_file), "--targets", "ice40-up5k", "--ii", "4", "--no-fit"]
    assert main([*argv, "--workers", "1", "--out", str(tmp_path / "local")]) == 0
    local, records = _fields(tmp_path / "local")
    assert len(records) == 1 and set(FIELDS) <= set(records[0])
    assert local[0]["placed"] and local[0]["lut4"] > 0 and local[0]["fmax_mhz"] > 0
    assert records[0]["images_per_second"] == pytest.approx(records[0]["fmax_mhz"] * 1e6 / 4,
                                                            rel=1e-3)
    assert records[0]["cached"] is False
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == [
        "pareto_ice40-up5k.png", "results.json", "results.md", "runs"]
    err = capsys.readouterr().err
    assert "[1/1] ice40-up5k auto II 4 (2x16,1x8) p0 s1: placed 2x16,1x8 II 4," in err

    assert main([*argv, "--scheduler", cluster.scheduler_address,
                 "--out", str(tmp_path / "remote")]) == 0
    remote, _ = _fields(tmp_path / "remote")
    assert remote == local

    assert main([*argv, "--scheduler", "tcp://127.0.0.1:9", "--out",
                 str(tmp_path / "local")]) == 0     # all cached: no cluster needed
    again, records = _fields(tmp_path / "local")
    assert again == local and records[0]["cached"] is True
    assert "1 runs (1 cached)" in capsys.readouterr().out


def test_a_run_over_its_time_limit_is_a_record_not_a_crash(tiny_file, tmp_path, cluster):
    status = main(["explore", str(tiny_file), "--targets", "ice40-up5k", "--ii", "4,8",
                   "--no-fit", "--timeout", "0.002", "--scheduler", cluster.scheduler_address,
                   "--out", str(tmp_path)])
    assert status == 1
    _, records = _fields(tmp_path)
    assert [(r["status"], r["placed"], r["error"]) for r in records] == [
        ("timeout", False, "stopped after the time limit of 0.002 minutes")] * 2
    assert ("- 2 runs: 0 placed, 0 not placed, 2 timeout, 0 failed; 0 from the cache"
            in (tmp_path / "results.md").read_text())


def test_a_runs_key_and_tools_do_not_depend_on_the_other_targets_of_the_sweep():
    # With an ECP5 target beside it, an iCE40 run named nextpnr-ecp5 in its key and was
    # synthesized again by a sweep that had it cached.
    run = Run("ice40-up5k", "auto", 256, "1x96,1x32,1x32,5x1", 0, 1)
    alone = explore.tool_versions(["ice40"])
    both = explore.tool_versions(["ice40", "ecp5"])
    assert "nextpnr-ecp5" in both and "nextpnr-ecp5" not in alone
    assert explore.tools_of(both, "ice40") == alone
    options = {"freq_mhz": None, "timeout_minutes": 30}
    assert (explore.run_key("sha256:x", run, options, explore.tools_of(both, "ice40"))
            == explore.run_key("sha256:x", run, options, alone))
