"""Classify test images on a board running 'bnnflow build' gateware, or in simulation.

Sends the model's test images (the split recorded in its provenance, encoded with the model's
input encoding; a model without one, e.g. a random network, gets seeded random input bits)
one request each over the UART, checks every reply (class, and popcounts unless --class-only)
against the golden model, and prints accuracy and images per second. --port sim runs the same
UART top in Amaranth's simulator (with a small clock divider) instead of a board; --fold, --ii
and --pipeline then choose the simulated design (on a board they are fixed by the build).
Exit status 1 when any reply disagrees with the golden model.
"""

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL", help="path of a .bnn file")
    parser.add_argument("--port", required=True, metavar="DEVICE|sim",
                        help="serial port of the board (e.g. /dev/ttyUSB1), or 'sim'")
    parser.add_argument("--images", type=int, default=100, metavar="N",
                        help="number of test images (default 100; 0 = the whole test split)")
    parser.add_argument("--baud", type=int, default=115200, help="UART baud rate (115200)")
    parser.add_argument("--class-only", action="store_true",
                        help="the board was built with --class-only (replies are one byte)")
    parser.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS",
                        help="wait this long for each reply (default 2)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random input bits for models without a test split")
    sim = parser.add_argument_group("simulation (--port sim)")
    sim.add_argument("--fold", metavar="auto|FILE|PExSIMD,...", default=None,
                     help="per-layer folding of the simulated design (default: fully parallel)")
    sim.add_argument("--ii", metavar="CYCLES", type=int, default=None,
                     help="target initiation interval for --fold auto")
    sim.add_argument("--pipeline", metavar="STAGES", type=int, default=0,
                     help="popcount pipeline stages of the simulated design")
    sim.add_argument("--divisor", type=int, default=4,
                     help="clock cycles per UART bit in simulation (default 4)")


def load_images(model, count, seed=0):
    """``(bits (B, K0), labels (B,) or None, source text)`` for ``count`` images (0 = all)."""
    from ..errors import BnnflowError
    from ..model import data

    try:
        images, labels = data.test_split_for(model)
    except BnnflowError:
        if count == 0:
            raise
        return data.random_inputs(model, count, seed), None, \
            f"{count} random input vectors (seed {seed}; the model has no recorded test split)"
    if count:
        images, labels = images[:count], labels[:count]
    name = model.provenance.get("dataset")
    return model.input.encode(images), labels, f"{len(labels)} test images of {name}"


def run(args):
    import numpy as np

    from ..errors import BnnflowError
    from ..model import artifact
    from .host import SerialTransport, SimTransport, classify_over

    if args.images < 0:
        raise BnnflowError(f"--images must be 0 (all) or a positive count, not {args.images}")
    if args.baud <= 0:
        raise BnnflowError(f"--baud must be a positive UART rate, such as 115200, not "
                           f"{args.baud}")
    model = artifact.load(args.model)
    bits, labels, source = load_images(model, args.images, args.seed)
    popcounts = not args.class_only
    if args.port == "sim":
        from .uart import check_divisor
        from .uart_top import UartTop

        try:
            # Check the parameters first: a component whose construction fails is reported by
            # Amaranth as created but never used.
            check_divisor(args.divisor)
            folding = _folding(model, args)
            top = UartTop(model, folding, args.pipeline, divisor=args.divisor,
                          popcounts=popcounts)
        except ValueError as e:
            raise BnnflowError(str(e)) from None
        transport = SimTransport(top)
    else:
        if args.fold is not None or args.ii is not None or args.pipeline:
            raise BnnflowError("--fold, --ii and --pipeline only apply to --port sim (the "
                               "board runs the design it was built with)")
        transport = SerialTransport(args.port, args.baud)
    print(f"sending {source} over {transport.name}")
    with transport:
        result = classify_over(transport, model, bits, popcounts=popcounts,
                               timeout=args.timeout)
    n = len(bits)
    checked = "class and popcounts" if popcounts else "class"
    print(f"golden model agreement: {n - result.mismatches}/{n} images ({checked} checked)")
    if labels is not None:
        accuracy = float(np.mean(result.classes == labels))
        print(f"accuracy: {accuracy:.4f} ({int(np.sum(result.classes == labels))}/{n})")
    rate = result.images_per_second
    # Three figures below 100 (a simulated conv network runs at 0.02 images/s, not "0.0").
    rate_text = f"{rate:.3g}" if rate < 100 else f"{rate:,.0f}"
    print(f"throughput: {rate_text} images/s over {transport.name}"
          + (f" (wall clock of the simulation, {transport.cycles} cycles simulated)"
             if args.port == "sim" else ""))
    if result.mismatches:
        bad = np.flatnonzero(result.classes != result.expected.classes)[:10]
        print(f"MISMATCH: {result.mismatches} images differ from the golden model "
              f"(first class mismatches at {bad.tolist()})")
        return 1
    return 0


def _folding(model, args):
    from ..hw.folding import resolve_folding

    if args.fold == "fit":
        raise ValueError("--fold fit places designs on a device, which --port sim does not; "
                         "give the folding 'bnnflow build' printed (--fold PExSIMD,...)")

    return resolve_folding(model, args.fold, args.ii)
