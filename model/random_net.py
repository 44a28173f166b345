"""Random valid networks, for tests and for trying the hardware flow without training."""

import numpy as np

from .artifact import BnnModel, DenseLayer, InputSpec

__all__ = ["random_model"]


def random_model(widths, seed=0, edge_thresholds=True):
    """Build a random valid :class:`BnnModel`.

    Parameters
    ----------
    widths : sequence of int
        ``[K0, N1, ..., C]``: the input width, then each layer's neuron count; the last entry
        is the number of classes. At least two entries, all positive.
    seed : int
        Seed of the numpy generator; the same seed gives the same network.
    edge_thresholds : bool
        Also place the edge thresholds 0 (always fires), ``K`` and ``K + 1`` (never fires) on
        some neurons, so that tests exercise them.

    Raises
    ------
    ValueError
        If ``widths`` has fewer than two entries or a non-positive one.
    """
    widths = list(widths)
    if len(widths) < 2 or not all(isinstance(w, int | np.integer) and w > 0 for w in widths):
        raise ValueError(f"widths must be at least two positive integers, not {widths!r}")
    rng = np.random.default_rng(seed)
    layers = []
    for i, (k, n) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        weights = rng.integers(0, 2, size=(n, k), dtype=np.uint8)
        thresholds = None
        if i < len(widths) - 2:
            # Around K/2 so that neurons fire about half the time, plus a few edges.
            t = np.clip(np.round(rng.normal(k / 2, max(1.0, np.sqrt(k) / 2), size=n)), 0, k + 1)
            if edge_thresholds:
                for j, edge in enumerate((0, k, k + 1)):
                    if j < n and rng.random() < 0.75:
                        t[rng.integers(n)] = edge
            thresholds = t.astype(np.int64)[:, None]
        layers.append(DenseLayer(name=f"fc{i}", weights=weights, thresholds=thresholds))
    return BnnModel(layers=layers, input=InputSpec(width=widths[0], shape=(widths[0],)),
                    classes=[str(c) for c in range(widths[-1])],
                    provenance={"source": "random_model", "seed": int(seed),
                                "widths": [int(w) for w in widths]})
