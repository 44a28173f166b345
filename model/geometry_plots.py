"""How ``bnnflow geometry`` shows its measures: a table and PNG plots.

:func:`summary_table` turns a report of :func:`bnnflow.model.geometry.analyze` into a
:class:`rich.table.Table`; :func:`write_plots` draws the arrays behind it
(:class:`bnnflow.model.geometry.LayerData`) with matplotlib (Agg, no display needed).
"""

from pathlib import Path

import numpy as np

__all__ = ["summary_table", "write_plots"]


def _fmt(x, spec):
    return "N/A" if x is None else format(x, spec)


def summary_table(report):
    """A :class:`rich.table.Table` with one row per layer of a report from :func:`analyze`."""
    from rich.table import Table

    theory = report["theory_angle_deg"]
    table = Table(title=f"weight geometry: {report['quantizer']} weights, "
                        f"{report['test_samples']} test images",
                  caption=f"theory for Gaussian weights: {theory:.1f}°")
    for col in ("layer", "dim", "angle °", "random °", "dot r", "neuron r", "act angle °",
                "act r"):
        table.add_column(col, justify="left" if col == "layer" else "right")

    def spread(mean, std):
        return "N/A" if mean is None else f"{mean:.1f}±{std:.1f}"

    for entry in report["layers"]:
        own = entry.get("quantizer", report["quantizer"])
        name = entry["name"] if own == report["quantizer"] else f"{entry['name']} ({own})"
        table.add_row(name, str(entry["dimension"]),
                      spread(entry["angle_mean_deg"], entry["angle_std_deg"]),
                      spread(entry["random_angle_mean_deg"], entry["random_angle_std_deg"]),
                      _fmt(entry["dot_correlation"], ".3f"),
                      _fmt(entry["dot_correlation_neuron_mean"], ".3f"),
                      spread(entry["activation_angle_mean_deg"],
                             entry["activation_angle_std_deg"]),
                      _fmt(entry["activation_dot_correlation"], ".3f"))
    return table


def _save_png(fig, path):
    from ..fileio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=72)


def _scatter(ax, x, y, rng, limit=4000):
    x = np.asarray(x).ravel()
    y = np.asarray(y).ravel()
    if x.size > limit:
        keep = rng.choice(x.size, limit, replace=False)
        x, y = x[keep], y[keep]
    ax.scatter(x, y, s=2, alpha=0.3, linewidths=0, rasterized=True)


def write_plots(report, data, plots_dir):
    """Write ``angles.png``, ``dots.png`` and ``activations.png`` into ``plots_dir``.

    * ``angles.png``: per layer, the histogram of angles between each neuron's latent weights
      and their quantized version, the theoretical angle for Gaussian weights (dashed) and the
      angles between random Gaussian vectors of the same dimension (near 90 degrees).
    * ``dots.png``: per layer, dot products of the layer's binary inputs with the latent
      weights (x) against those with the quantized weights (y), with their correlation.
    * ``activations.png``: per layer, dot products of the quantized weights with the
      continuous inputs (x) against the binarized inputs (y).

    Returns ``{"angles": path, "dots": path, "activations": path}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    plots_dir = Path(plots_dir)
    layers = report["layers"]
    n = len(layers)
    rng = np.random.default_rng(0)
    theory = report["theory_angle_deg"]
    paths = {}

    fig = Figure(figsize=(2.8 * n + 1.4, 2.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, entry, d in zip(axes, layers, data, strict=True):
        finite = d.angles[np.isfinite(d.angles)]
        bins = np.linspace(0, 120, 61)
        ax.hist(finite, bins=bins, color="tab:blue",
                label=f"latent vs {report['quantizer']}")
        # The random pairs' histogram is scaled to the number of neurons.
        scale = max(finite.size, 1) / d.random_angles.size
        ax.hist(d.random_angles, bins=bins, color="tab:gray", alpha=0.6,
                weights=np.full(d.random_angles.size, scale), label="random pairs")
        ax.axvline(theory, color="tab:red", linestyle="--", label=f"theory {theory:.0f}°")
        ax.set_title(f"{entry['name']} (d={entry['dimension']})", fontsize=9)
        ax.set_xlabel("angle (degrees)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("neurons", fontsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    paths["angles"] = plots_dir / "angles.png"
    _save_png(fig, paths["angles"])

    for key, xs, ys, xlabel, ylabel, corr_key in (
            ("dots", "dots_latent", "dots_quantized", "inputs · latent W",
             f"inputs · {report['quantizer']} W", "dot_correlation"),
            ("activations", "act_dots_continuous", "act_dots_binary",
             "continuous inputs · W", "binarized inputs · W", "activation_dot_correlation")):
        fig = Figure(figsize=(3.0 * n, 2.9), layout="constrained")
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, entry, d in zip(axes, layers, data, strict=True):
            _scatter(ax, getattr(d, xs), getattr(d, ys), rng)
            ax.set_title(f"{entry['name']}: r = {_fmt(entry[corr_key], '.3f')}", fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0].set_ylabel(ylabel, fontsize=8)
        paths[key] = plots_dir / f"{key}.png"
        _save_png(fig, paths[key])
    return paths
