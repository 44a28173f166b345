"""Show a .bnn model: layers, widths, thresholds range, provenance and checksum."""

import json

from . import artifact

__all__ = ["add_arguments", "run", "describe"]


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL", help="path of a .bnn file")
    parser.add_argument("--json", action="store_true",
                        help="print the manifest summary as JSON instead of tables")


def describe(model, manifest):
    """A JSON-able summary of a loaded model."""
    layers = []
    for layer in model.layers:
        entry = {"name": layer.name, "kind": layer.kind, "in_width": layer.in_width,
                 "out_width": layer.out_width, "weight_bits": layer.weight_bits,
                 "output": "popcount" if layer.is_output else "activation",
                 "activation_bits": layer.activation_bits,
                 "in_bits": getattr(layer, "in_bits", 1), "synapses": layer.synapses}
        # Kind-specific facts (thresholds of binary dense layers).
        entry.update(layer.describe())
        layers.append(entry)
    return {"format_version": manifest["format_version"], "checksum": manifest["checksum"],
            "input": manifest["input"], "classes": manifest["classes"], "layers": layers,
            "provenance": manifest["provenance"]}


def _shape_text(entry):
    """``(in, out, op)`` cells: maps as ``HxWxC``, vectors as widths; ``op`` is the kernel of a conv
    layer (``/stride`` when not 1), ``dense``, ``window/stride`` of a pool or ``popcounts`` for the
    output layer, with ``pad p (code c)``, ``ternary``, ``n-bit in`` and ``n-bit out`` where they
    apply."""
    def shape(key, width):
        return "x".join(map(str, entry[key])) if key in entry else str(entry[width])

    ternary = "ternary " if entry["weight_bits"] == 2 else ""
    if "window" in entry:
        return (shape("in_shape", "in_width"), shape("out_shape", "out_width"),
                f"{entry['window']}/{entry['stride']} pool")
    if "kernel" in entry:
        step = f"/{entry['stride']}" if entry.get("stride", 1) != 1 else ""
        op = f"{'x'.join(map(str, entry['kernel']))}{step} {ternary}conv"
        if entry.get("pad"):
            op += f", pad {entry['pad']} (code {entry['pad_value']})"
    else:
        op = "popcounts" if entry["output"] == "popcount" else f"{ternary}dense"
    bits_in, bits_out = entry.get("in_bits", 1), entry["activation_bits"] or 1
    if bits_in > 1 and bits_in == bits_out:
        op += f", {bits_in}-bit in/out"
    else:
        op += f", {bits_in}-bit in" if bits_in > 1 else ""
        op += f", {bits_out}-bit out" if bits_out > 1 else ""
    return shape("in_shape", "in_width"), shape("out_shape", "out_width"), op


def _input_text(inp):
    """The input line: width, shape and encoding (a ``pixel_levels`` table of 255 thresholds
    by the pixels where its levels start; ``--json`` has them all)."""
    enc = dict(inp["encoding"])
    unit = "bits"
    if enc["kind"] in ("pixels", "pixel_levels"):
        unit = f"{enc['bits']}-bit elements"
    if enc["kind"] == "pixel_levels":
        ts = enc.pop("thresholds")
        lo, hi = ts[0] * enc["scale"], ts[-1] * enc["scale"]
        enc["thresholds"] = f"{len(ts)}, pixels {lo:g} to {hi:g}"
    return f"{inp['width']} {unit}, shape {tuple(inp['shape'])}, encoding {json.dumps(enc)}"


def run(args):
    model, manifest = artifact.load_with_manifest(args.model)
    info = describe(model, manifest)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    inp = info["input"]
    console.print(f"[bold]{args.model}[/bold]  format v{info['format_version']}  "
                  f"{info['checksum']}")
    console.print(f"input: {_input_text(inp)}")
    console.print(f"classes: {', '.join(info['classes'])}")
    table = Table(title="layers")
    # The kind shows as the op ("3x3 conv", "2/2 pool", "dense"); --json has the kind names.
    for col in ("#", "name", "in", "out", "op", "thresholds", "always/never"):
        table.add_column(col, justify="right" if col in ("#", "in", "out") else "left")
    for i, entry in enumerate(info["layers"]):
        if "threshold_min" not in entry:
            thr, const = "-", "-"
        else:
            thr = f"{entry['threshold_min']}..{entry['threshold_max']}"
            const = f"{entry['always_fire']}/{entry['never_fire']}"
        table.add_row(str(i), entry["name"], *_shape_text(entry), thr, const)
    console.print(table)
    synapses = sum(entry["synapses"] for entry in info["layers"])
    stored = sum(entry["synapses"] * entry["weight_bits"] for entry in info["layers"])
    console.print(f"synapses: {synapses}; weight bits stored: {stored}"
                  + (" (a sign and a mask bit per ternary weight)" if stored > synapses else ""))
    if info["provenance"]:
        console.print("provenance:")
        for key, value in info["provenance"].items():
            console.print(f"  {key}: {json.dumps(value)}")
    return 0
