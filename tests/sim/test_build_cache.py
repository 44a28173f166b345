"""The build cache shared by the cocotb and the direct back ends, without a simulator."""

import pytest

from bnnflow.errors import ToolError
from bnnflow.sim.build_cache import BUILD_LOG, BUILD_OK, cached_build, design_dir, resolve_root


class _Builder:
    """Counts its builds; fails (after logging) while ``fail`` is set."""

    def __init__(self, fail=False):
        self.builds, self.fail = 0, fail

    def __call__(self, directory):
        self.builds += 1
        assert not any(p.name != BUILD_LOG for p in directory.iterdir())  # a fresh directory
        (directory / BUILD_LOG).write_text("step 1\nstep 2: boom\n")
        (directory / "partial.o").write_text("")
        if self.fail:
            raise RuntimeError("exit status 2")
        (directory / "out").write_text("built")


def test_design_dir_is_named_after_every_part(tmp_path):
    first = design_dir(tmp_path, "icarus", "top", "a", "b")
    assert first.parent == tmp_path and first.name.startswith("icarus-top-")
    assert design_dir(tmp_path, "icarus", "top", "a", "b") == first
    # NUL-joined: moving text from one part to the next is another design.
    assert design_dir(tmp_path, "icarus", "top", "ab", "") != first


def test_a_finished_build_is_reused_and_a_changed_ready_check_rebuilds(tmp_path):
    build = _Builder()
    directory = design_dir(tmp_path, "x", "t", "v")
    assert cached_build(directory, build, what="x", errors=(RuntimeError,)) == directory
    assert (directory / BUILD_OK).is_file() and (directory / "out").read_text() == "built"
    cached_build(directory, build, what="x", errors=(RuntimeError,))
    assert build.builds == 1
    cached_build(directory, build, what="x", errors=(RuntimeError,),
                 ready=lambda d: (d / "missing").is_file())
    assert build.builds == 2


def test_a_failed_build_is_removed_keeps_its_log_and_is_retried(tmp_path):
    build = _Builder(fail=True)
    directory = design_dir(tmp_path, "x", "t", "v")
    with pytest.raises(ToolError) as info:
        cached_build(directory, build, what="icarus", errors=(RuntimeError,))
    failed = tmp_path / f"{directory.name}.failed.log"
    assert str(info.value) == (f"icarus build failed (exit status 2); log: {failed}\n"
                               f"step 1\nstep 2: boom")
    assert not directory.exists() and failed.read_text() == "step 1\nstep 2: boom\n"
    build.fail = False
    cached_build(directory, build, what="icarus", errors=(RuntimeError,))
    assert build.builds == 2 and (directory / BUILD_OK).is_file()


def test_errors_not_listed_are_not_turned_into_tool_errors(tmp_path):
    build = _Builder(fail=True)
    with pytest.raises(RuntimeError, match="^exit status 2$"):
        cached_build(design_dir(tmp_path, "x", "t", "v"), build, what="x", errors=(OSError,))


def test_a_relative_build_root_is_made_absolute(tmp_path, monkeypatch):
    # The tools run inside the build directory: `verify --build-dir bd` gave Verilator
    # `--Mdir bd/...` from within bd and it could not write its files.
    monkeypatch.chdir(tmp_path)
    assert resolve_root("bd") == tmp_path / "bd"
    monkeypatch.setenv("BNNFLOW_SIM_BUILD", "env-bd")
    assert resolve_root() == tmp_path / "env-bd"
