"""The networks of a verification campaign: what ``--sizes`` entries mean, and how a network
of each is made and folded at random.

An entry is a dense network's widths, ``16-8-4`` (the input width, then each layer's neurons, the
last one the classes), or a conv network, ``8x8x2:c4k3-p2-d6-3``: the channels-last input map ``H x
W x C``, then its stages, ``cNkK`` a conv of ``N`` channels and a ``K x K`` kernel (``cNkKsS`` with
stride ``S``), ``pW`` a ``W x W`` max-pool (``pWsS`` with stride ``S``, windows that overlap for ``S
< W``), ``dN`` a dense layer of ``N`` neurons, and last the classes. :meth:`NetSpec.make` builds one
with :func:`bnnflow.model.random_net.random_model` or
:func:`~bnnflow.model.random_net.random_conv_model`; :func:`random_folding` draws a folding the
hardware takes (a dense layer after a map takes whole pixels).
"""

from dataclasses import dataclass

__all__ = ["NetSpec", "parse_net", "random_folding"]


@dataclass(frozen=True)
class NetSpec:
    """One ``--sizes`` entry.

    Parameters
    ----------
    text : str
        The entry as written back (``16-8-4``, ``8x8x2:c4k3-p2-d6-3``).
    widths : tuple of int or None
        A dense network's widths.
    in_shape : tuple of int or None
        A conv network's input map ``(H, W, C)``.
    stages : tuple
        A conv network's stages as :func:`~bnnflow.model.random_net.random_conv_model` takes
        them, and ``classes``.
    classes : int or None
    """

    text: str
    widths: tuple = None
    in_shape: tuple = None
    stages: tuple = ()
    classes: int = None

    def __str__(self):
        return self.text

    @property
    def layers(self):
        """Number of layers (the output layer included)."""
        return len(self.widths) - 1 if self.widths else len(self.stages) + 1

    @property
    def input_width(self):
        """Input elements of one image."""
        if self.widths:
            return self.widths[0]
        h, w, c = self.in_shape
        return h * w * c

    def make(self, seed, kind=None):
        """The random network of this entry with ``seed``; ``kind`` as
        :func:`~bnnflow.model.random_net.random_model` takes ``ternary``, ``act_bits`` and
        ``input_bits``. ValueError when the stages do not fit the map."""
        from ..model.random_net import random_conv_model, random_model

        kind = kind or {}
        if self.widths:
            return random_model(list(self.widths), seed=seed, **kind)
        return random_conv_model(self.in_shape, list(self.stages), self.classes, seed=seed,
                                 **kind)


def parse_net(text):
    """A ``--sizes`` entry as a :class:`NetSpec`; ValueError naming the forms otherwise."""
    from ..model.random_net import parse_widths
    from ..model.stage_spec import parse_stages

    text = str(text).strip()
    if ":" not in text:
        widths = tuple(parse_widths(text))
        return NetSpec("-".join(map(str, widths)), widths=widths)
    shape, _, rest = text.partition(":")
    dims = shape.lower().split("x")
    parts = rest.lower().split("-")
    if (len(dims) != 3 or not all(d.isdigit() and int(d) > 0 for d in dims)
            or len(parts) < 2 or not parts[-1].isdigit() or int(parts[-1]) < 1):
        raise ValueError(f"a conv network is HxWxC:stages-classes, like 8x8x2:c4k3-p2-d6-3, "
                         f"not {text!r}")
    stages = parse_stages("-".join(parts[:-1]), whole=text)
    in_shape = tuple(int(d) for d in dims)
    return NetSpec(f"{'x'.join(dims)}:{rest.lower()}", in_shape=in_shape, stages=tuple(stages),
                   classes=int(parts[-1]))


def random_folding(model, rng, slower_after=None):
    """A random ``PExSIMD,...`` folding of ``model``: per layer PE uniform in ``1..N`` and
    SIMD uniform among ``1..K`` (of those the layer before can feed, after a conv or pool
    layer).

    ``slower_after=J`` (for the fault ``drop_ready:J``) draws again until layer ``J + 1``
    takes more cycles per vector than layer ``J``, so that it is still busy when layer ``J``
    offers the next vector and a dropped ready loses data (with a faster consumer the fault
    is invisible); after 100 draws layer ``J`` takes its fewest cycles and layer ``J + 1`` its
    most. No effect when ``J`` is the last layer (output back-pressure exposes it).
    """
    from ..hw.folding import LayerFold, fed_by_previous

    def simds(j, layer, pe, folds):
        accepts = fed_by_previous(model, j, folds)
        return [s for s in range(1, layer.fan_in + 1)
                if accepts is None or accepts(LayerFold(pe, s))]

    def draw():
        folds = []
        for j, layer in enumerate(model.layers):
            pe = int(rng.integers(1, layer.neurons + 1))
            choice = simds(j, layer, pe, folds)
            folds.append(LayerFold(pe, int(choice[rng.integers(len(choice))])))
        return folds

    folds = draw()
    layers = model.layers
    if slower_after is not None and slower_after + 1 < len(layers):
        j = slower_after
        for _ in range(100):
            if layers[j + 1].cycles(folds[j + 1]) > layers[j].cycles(folds[j]):
                break
            folds = draw()
        else:
            pe = layers[j].neurons
            folds[j] = LayerFold(pe, max(simds(j, layers[j], pe, folds[:j])))
            folds[j + 1] = LayerFold(1, min(simds(j + 1, layers[j + 1], 1, folds[:j + 1])))
    return ",".join(str(f) for f in folds)
