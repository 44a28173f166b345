"""Build caching: one build per design, failed builds removed, Verilator run-time objects shared."""

import pytest

from bnnflow.errors import ToolError
from bnnflow.sim import cocotb_sim, verilator_cache

GOOD = "module t(input clk, output reg q = 1'b0);\n  always @(posedge clk) q <= ~q;\nendmodule\n"
BAD = "module t(input clk;\nendmodule\n"


def test_icarus_build_is_reused_for_the_same_text(tmp_path):
    first = cocotb_sim.build("icarus", GOOD, "t", build_root=tmp_path)
    marker = first / "build.ok"
    stamp = marker.stat().st_mtime_ns
    assert cocotb_sim.build("icarus", GOOD, "t", build_root=tmp_path) == first
    assert marker.stat().st_mtime_ns == stamp
    assert cocotb_sim.build("icarus", GOOD.replace("~q", "q"), "t", build_root=tmp_path) != first


def test_failed_build_raises_and_leaves_no_build_dir(tmp_path):
    with pytest.raises(ToolError, match=r"^icarus build failed .*; log: "):
        cocotb_sim.build("icarus", BAD, "t", build_root=tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]
    assert list(tmp_path.glob("*.failed.log"))


def _fake_build(path, parallel):
    path.mkdir()
    (path / "Vtop.mk").write_text("VM_PREFIX = Vtop\nVM_USER_CFLAGS = \\\n")
    (path / "Vtop_classes.mk").write_text(
        f"VM_TRACE = 1\nVM_PARALLEL_BUILDS = {parallel}\nVM_CLASSES_FAST += \\\n  Vtop \\\n"
        "VM_GLOBAL_FAST += \\\n  verilated \\\n  verilated_vpi \\\nVM_GLOBAL_SLOW += \\\n")
    for name in ("verilated", "verilated_vpi"):
        (path / f"{name}.o").write_bytes(name.encode())
        (path / f"{name}.d").write_text(f"{name}.o: x\n")
    return path


def test_runtime_objects_are_shared_across_design_sizes_not_across_options(tmp_path):
    overrides = {"CFG_CXXFLAGS_STD": "-std=c++20"}
    small = _fake_build(tmp_path / "small", parallel=0)
    large = _fake_build(tmp_path / "large", parallel=1)
    assert verilator_cache.cache_key(small, overrides) == verilator_cache.cache_key(large,
                                                                                  overrides)
    assert verilator_cache.cache_key(small, {}) != verilator_cache.cache_key(small, overrides)
    cache = tmp_path / "cache"
    assert verilator_cache.save(cache, small, overrides)
    for f in large.glob("verilated*"):
        f.unlink()
    assert verilator_cache.restore(cache, large, overrides) == 2
    assert (large / "verilated_vpi.o").read_bytes() == b"verilated_vpi"
    # A restored object must be newer than the makefile, or make rebuilds it.
    assert (large / "verilated.o").stat().st_mtime_ns >= (large / "Vtop.mk").stat().st_mtime_ns
    traced = _fake_build(tmp_path / "traced", parallel=0)
    (traced / "Vtop_classes.mk").write_text(
        (traced / "Vtop_classes.mk").read_text().replace("VM_TRACE = 1", "VM_TRACE = 0"))
    assert verilator_cache.restore(cache, traced, overrides) == 0
