"""Reports of a design-space sweep (:mod:`bnnflow.boards.explore`): ``results.md`` and one
``pareto_<target>.png`` per target.

The Pareto front of a target (:func:`pareto_front`) is the set of placed runs that no other
placed run of that target beats on both images per second (higher is better) and LUT4 (fewer
is better): run ``a`` dominates ``b`` when ``a.lut4 <= b.lut4`` and ``a.images_per_second >=
b.images_per_second`` with at least one strict. Runs with equal figures (the same design with
another placer seed) do not dominate each other. Each plot has two panels: images/s against
LUT4 (log scale, the front joined by a step line and circled) and Fmax against II.
"""

from pathlib import Path

from ..fileio import atomic_path, write_text_atomic

__all__ = ["pareto_front", "write_reports", "markdown", "plot_target"]

_STATUS_ORDER = ("placed", "not_placed", "timeout", "failed")


def pareto_front(records):
    """Keys of the placed records of ``records`` on the Pareto front (see module docstring)."""
    points = [r for r in records if r.get("placed") and r.get("images_per_second")
              and r.get("lut4") is not None]
    front = set()
    for r in points:
        dominated = any(o["lut4"] <= r["lut4"] and o["images_per_second"] >= r["images_per_second"]
                        and (o["lut4"] < r["lut4"]
                             or o["images_per_second"] > r["images_per_second"])
                        for o in points)
        if not dominated:
            front.add(r["key"])
    return front


def _cell(value, digits=None):
    if value is None:
        return "-"
    if digits is not None and isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}"
    return str(value)


def _target_table(records, front):
    rows = ["| fold | II asked | folding | II | pipeline | seed | status | LUT4 | FF | BRAM "
            "| Fmax (MHz) | images/s | latency (cycles / us) | Pareto | s |",
            "|" + " --- |" * 15]
    order = sorted(records, key=lambda r: (r["status"] != "placed",
                                           -(r.get("images_per_second") or 0),
                                           r.get("lut4") or 0))
    for r in order:
        latency = (f"{r['latency']} / {_cell(r['latency_us'], 2)}" if r.get("latency")
                   else "-")
        rows.append(
            f"| {r['fold']} | {_cell(r['ii_requested'])} | {_cell(r['folding'])} "
            f"| {_cell(r['ii'])} | {r['pipeline']} | {r['seed']} | {r['status']} "
            f"| {_cell(r['lut4'])} | {_cell(r['ff'])} | {_cell(r['bram'])} "
            f"| {_cell(r['fmax_mhz'], 1)} | {_cell(r['images_per_second'])} | {latency} "
            f"| {'yes' if r['key'] in front else ''} | {_cell(r['seconds'], 0)} |")
    return rows


def markdown(header, records):
    """The text of ``results.md``: a summary, then per target a table (fastest first), its
    Pareto front and the one-line errors of the runs that did not place."""
    counts = {s: sum(r["status"] == s for r in records) for s in _STATUS_ORDER}
    cached = sum(bool(r.get("cached")) for r in records)
    options = header["options"]
    lines = [f"# bnnflow explore: {header['model']}", "",
             f"- model checksum: `{header['model_checksum']}`",
             "- tools: " + ", ".join(f"{k} {v}" for k, v in header["tools"].items()),
             f"- options: targets {', '.join(options['targets'])}; II {options['ii']}"
             f"{' and fit' if options['fit'] else ''}; pipeline {options['pipeline']}; "
             f"placer seeds {options['seeds']}; clock constraint "
             f"{options['freq_mhz'] or 'the target default'}; time limit "
             f"{options['timeout_minutes'] or 'none'} min per run",
             f"- {len(records)} runs: " + ", ".join(f"{n} {s.replace('_', ' ')}"
                                                    for s, n in counts.items())
             + f"; {cached} from the cache",
             "", "LUT4 is Yosys' count of LUT4 cells; images/s = Fmax / II; latency in cycles "
                 "and at Fmax. Pareto: not beaten on both images/s and LUT4 by another placed "
                 "run of the same target.", ""]
    for target in dict.fromkeys(r["target"] for r in records):
        mine = [r for r in records if r["target"] == target]
        front = pareto_front(mine)
        lines += [f"## {target}", "", *_target_table(mine, front), ""]
        if front:
            pts = sorted((r for r in mine if r["key"] in front), key=lambda r: r["lut4"])
            lines += ["Pareto front (LUT4 -> images/s): " + ", ".join(
                f"{r['lut4']} -> {_cell(r['images_per_second'])} ({r['folding']}, "
                f"p{r['pipeline']})" for r in pts), ""]
        errors = [r for r in mine if r["status"] != "placed"]
        if errors:
            lines += ["Runs without a placed design (too big, failed or timed out):", ""]
            lines += [f"- {r['fold']} {r['folding'] or ''} II {_cell(r['ii_requested'])} "
                      f"p{r['pipeline']} s{r['seed']}: {r['status']}: {r['error']}"
                      for r in errors]
            lines.append("")
        lines.append(f"![{target}](pareto_{target}.png)")
        lines.append("")
    return "\n".join(lines)


def plot_target(records, target, path):
    """Draw ``pareto_<target>.png`` at ``path`` (written atomically) with matplotlib (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in records if r["target"] == target and r.get("placed")
            and r.get("images_per_second")]
    front = pareto_front(mine)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for pipeline in sorted({r["pipeline"] for r in mine}):
        for fold, marker in (("auto", "o"), ("fit", "*")):
            pts = [r for r in mine if r["pipeline"] == pipeline and r["fold"] == fold]
            if not pts:
                continue
            label = f"{fold}, pipeline {pipeline}"
            left.scatter([r["lut4"] for r in pts], [r["images_per_second"] for r in pts],
                         marker=marker, s=60 if fold == "fit" else 30, label=label)
            right.scatter([r["ii"] for r in pts], [r["fmax_mhz"] for r in pts],
                          marker=marker, s=60 if fold == "fit" else 30, label=label)
    on_front = sorted((r for r in mine if r["key"] in front), key=lambda r: r["lut4"])
    if on_front:
        left.step([r["lut4"] for r in on_front], [r["images_per_second"] for r in on_front],
                  where="post", color="black", linewidth=1, label="Pareto front")
        left.scatter([r["lut4"] for r in on_front], [r["images_per_second"] for r in on_front],
                     s=140, facecolors="none", edgecolors="red", linewidths=1.5)
    left.set(xlabel="LUT4", ylabel="images/s", yscale="log",
             title=f"{target}: images/s against LUT4")
    right.set(xlabel="II (cycles)", ylabel="Fmax (MHz)", xscale="log",
              title=f"{target}: Fmax against II")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        if mine:
            ax.legend(fontsize=8)
    if not mine:
        left.text(0.5, 0.5, "no run placed", ha="center", transform=left.transAxes)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_reports(out, header, records):
    """Write ``results.md`` and ``pareto_<target>.png`` for every target into ``out``; return
    the paths written."""
    out = Path(out)
    write_text_atomic(out / "results.md", markdown(header, records))
    paths = [out / "results.md"]
    for target in header["options"]["targets"]:
        path = out / f"pareto_{target}.png"
        plot_target(records, target, path)
        paths.append(path)
    return paths
