"""Training of binarized MLPs and CNNs and their exact export: :func:`train_and_export`.

Recipe (the same for the binarized network and the ``--float-baseline`` network):

* Adam (no weight decay: it would pull latent weights to 0 and flip signs at random) with a
  cosine learning-rate schedule stepped per batch, down to 0 at the end of the last epoch;
* cross-entropy on the scores, mini-batches shuffled by a seeded generator;
* latent weights clipped to ``[-1, 1]`` after every optimizer step;
* dropout on hidden activations (:data:`DEFAULT_DROPOUT`) and, for MNIST, random shifts of the
  training images by up to one pixel (:data:`DEFAULT_SHIFT`); batch 64, peak lr 0.01;
* seeded and deterministic on CPU: ``torch.manual_seed``, deterministic algorithms and a fixed
  thread count (restored afterwards), so the same configuration gives the same weights.

Input pixels become bits with the artifact's own :meth:`InputSpec.encode`
(:mod:`bnnflow.model.encoding`: bit 1 where ``pixel / scale >= input_threshold``; with several
thresholds, a thermometer code of one bit per pixel and threshold), so the network and the
``.bnn`` file see identical inputs. The model after the last epoch is exported (the test set is
never used to pick it).
"""

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__, numerics
from ..errors import BnnflowError
from ..fileio import atomic_path, check_output_dir
from . import artifact, golden
from .artifact import InputSpec
from .cnn import BinaryCNN, FloatCNN
from .data import load_dataset
from .encoding import make_encoding
from .export import ExportError, export_model
from .layers import clip_latent
from .nets import BinaryMLP, FloatMLP
from .train_config import (
    DEFAULT_DROPOUT,
    DEFAULT_INPUT_THRESHOLD,
    DEFAULT_SHIFT,
    OUTPUT_FILES,
    TrainConfig,
    default_epochs,
    network_label,
)
from .train_outputs import checkpoint_dict, plot_histories

__all__ = ["TrainConfig", "TrainResult", "default_epochs", "train_and_export", "train_network",
           "OUTPUT_FILES", "DEFAULT_SHIFT", "DEFAULT_INPUT_THRESHOLD", "DEFAULT_DROPOUT",
           "random_shift"]


@dataclass
class TrainResult:
    """What :func:`train_and_export` returns.

    Attributes
    ----------
    metrics : dict
        The content of ``metrics.json``.
    model : BnnModel
        The exported model.
    net : BinaryMLP or BinaryCNN
        The trained network (eval mode).
    paths : dict
        ``{"model", "metrics", "plot", "checkpoint"}`` -> path (empty when ``out`` is None).
    checksum : str or None
        The ``.bnn`` checksum when written.
    """

    metrics: dict
    model: artifact.BnnModel
    net: BinaryMLP | BinaryCNN
    paths: dict = field(default_factory=dict)
    checksum: str | None = None


@contextlib.contextmanager
def _deterministic(seed, threads):
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        with numerics.training_flags():
            yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def _pm1(values, top=1):
    """Inputs as the values the network computes with: ``2a - L`` (``+-1`` for bits)."""
    return torch.from_numpy(values.astype(np.float32) * 2 - top)


@torch.no_grad()
def _predict(net, x, batch=4096):
    was_training = net.training
    net.eval()
    out = torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)])
    net.train(was_training)
    return out.argmax(dim=1)


def random_shift(images, max_shift, background, generator):
    """Shift each image ``(B, H, W)`` by its own random offsets in ``[-s, s]`` per axis.

    Pixels shifted in from outside take the value ``background``. Images ``(B, L, H, W)``
    (the levels of a thermometer code) shift every level of an image alike.
    """
    if images.dim() == 4:
        state = generator.get_state()
        out = []
        for level in range(images.shape[1]):
            generator.set_state(state)  # the same offsets for every level
            out.append(random_shift(images[:, level], max_shift, background, generator))
        return torch.stack(out, dim=1)
    b, h, w = images.shape
    s = max_shift
    padded = nn.functional.pad(images, (s, s, s, s), value=background)
    dy = torch.randint(0, 2 * s + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * s + 1, (b,), generator=generator)
    rows = torch.arange(h)[None, :, None] + dy[:, None, None]
    cols = torch.arange(w)[None, None, :] + dx[:, None, None]
    return padded[torch.arange(b)[:, None, None], rows, cols]


def _shift_batch(xb, shift, image_shape, background, gen, channels_last):
    """:func:`random_shift` of flat rows ``xb``: ``(H, W)`` or ``(L, H, W)`` images as they
    are, ``(H, W, C)`` channels-last images with every channel shifted alike."""
    if channels_last:
        h, w, c = image_shape
        maps = xb.reshape(len(xb), h, w, c).permute(0, 3, 1, 2)
        return random_shift(maps, shift, background, gen).permute(0, 2, 3, 1).reshape(
            len(xb), -1)
    return random_shift(xb.reshape(len(xb), *image_shape), shift, background,
                        gen).reshape(len(xb), -1)


def train_network(net, x_train, y_train, x_test, y_test, *, epochs, batch_size, lr, seed,
                  progress=None, label="bnn", shift=0, image_shape=None, background=-1.0,
                  channels_last=False):
    """Train ``net`` in place with the recipe of this module; returns the per-epoch history.

    ``x_*`` are float32 tensors ``(n, features)``, ``y_*`` int64 tensors. ``progress`` is a
    rich ``Progress`` or ``None``. With ``shift > 0`` every training batch is reshaped to
    ``image_shape`` (``(H, W)``, thermometer levels ``(L, H, W)``, or with ``channels_last``
    a colour image ``(H, W, C)``) and shifted by :func:`random_shift`. The caller sets seeds and
    determinism (see :func:`train_and_export`).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=0.0)
    steps = (len(x_train) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    loss_fn = nn.CrossEntropyLoss()
    history = {"loss": [], "train_accuracy": [], "test_accuracy": []}
    task = None
    if progress is not None:
        task = progress.add_task(label, total=epochs, loss=float("nan"), acc=float("nan"),
                                 test=float("nan"))
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total_loss, correct = 0.0, 0
        for i in range(steps):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if shift:
                xb = _shift_batch(xb, shift, image_shape, background, gen, channels_last)
            scores = net(xb)
            loss = loss_fn(scores, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            clip_latent(net)
            total_loss += float(loss.detach()) * len(idx)
            correct += int((scores.argmax(dim=1) == yb).sum())
        history["loss"].append(total_loss / len(x_train))
        history["train_accuracy"].append(correct / len(x_train))
        history["test_accuracy"].append(float((_predict(net, x_test) == y_test)
                                              .float().mean()))
        if task is not None:
            progress.update(task, advance=1, loss=history["loss"][-1],
                            acc=history["train_accuracy"][-1], test=history["test_accuracy"][-1])
    net.eval()
    return history


def _epoch_line(description, completed, total, fields):
    return (f"{description} epoch {completed}/{total}: loss {fields['loss']:.4f} train "
            f"{fields['acc']:.3f} test {fields['test']:.3f}")


def _progress(enabled):
    if not enabled:
        return contextlib.nullcontext(None)
    from ..lineprogress import LineProgress, is_terminal

    if not is_terminal():           # a log or a pipe: a line per epoch, not a bar at the end
        return LineProgress(_epoch_line)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}[/bold] epoch"), MofNCompleteColumn(),
                    BarColumn(bar_width=20), TextColumn("loss {task.fields[loss]:.4f} train "
                                                        "{task.fields[acc]:.3f} test "
                                                        "{task.fields[test]:.3f}"),
                    TimeElapsedColumn(), transient=False)


def _image_map(shape):
    """A raw image shape as a channels-last ``(H, W, C)`` map."""
    return (*shape, 1) if len(shape) == 2 else tuple(shape)


def _float_baseline(config, ds, progress):
    """The same topology with real weights and activations on the raw pixels
    (``--float-baseline``): ``(history, test accuracy)``."""
    torch.manual_seed(config.seed)
    if config.conv:
        fnet = FloatCNN(_image_map(ds.shape), config.stages, len(ds.classes),
                        dropout=config.dropout)
    else:
        fnet = FloatMLP(int(np.prod(ds.shape)), config.hidden, len(ds.classes),
                        dropout=config.dropout)
    xf_train = torch.from_numpy((ds.x_train.reshape(len(ds.x_train), -1) / ds.scale)
                                .astype(np.float32))
    xf_test = torch.from_numpy((ds.x_test.reshape(len(ds.x_test), -1) / ds.scale)
                               .astype(np.float32))
    y_train, y_test = torch.from_numpy(ds.y_train), torch.from_numpy(ds.y_test)
    history = train_network(
        fnet, xf_train, y_train, xf_test, y_test, epochs=config.epochs,
        batch_size=config.batch_size, lr=config.lr, seed=config.seed, progress=progress,
        label="float baseline", shift=config.augment_shift, image_shape=ds.shape,
        background=0.0, channels_last=len(ds.shape) == 3)
    return history, float((_predict(fnet, xf_test) == y_test).float().mean())


def _binary_net(config, spec, ds):
    """The binarized network of ``config`` for inputs ``spec`` and the shape its training
    images are shifted in (:func:`train_network`'s ``image_shape``)."""
    if config.conv:
        if spec.map_shape is None:
            raise BnnflowError(f"the convolutional {network_label(config.preset, config.stages)} "
                               f"needs images of shape (H, W) or (H, W, C), not {ds.shape}")
        try:
            net = BinaryCNN(spec.map_shape, config.stages, len(ds.classes),
                            dropout=config.dropout, init_scale=config.init_scale,
                            weights=config.weights, quantizer=config.quantizer,
                            act_bits=config.act_bits, input_bits=config.input_bits)
        except ValueError as e:
            fix = "smaller windows or strides in --stages, or " if config.preset == "custom" \
                else ""
            raise BnnflowError(f"{network_label(config.preset, config.stages)} does not fit the "
                               f"{'x'.join(map(str, ds.shape))} images of {config.dataset} ({e}); "
                               f"choose {fix}a data set with larger images") from None
        return net, ds.shape
    net = BinaryMLP(spec.width, config.hidden, len(ds.classes), dropout=config.dropout,
                    init_scale=config.init_scale, weights=config.weights,
                    act_bits=config.act_bits, quantizer=config.quantizer)
    levels = spec.levels
    return net, ((levels, *ds.shape) if levels > 1 else ds.shape)


def _input_spec(config, ds):
    """How the data set's pixels become inputs: thresholded bits (one or a thermometer code),
    or with ``input_bits > 1`` one n-bit element per pixel (encoding ``pixels``)."""
    pixels = int(np.prod(ds.shape))
    if config.input_bits > 1:
        return InputSpec(width=pixels, shape=tuple(ds.shape),
                         encoding={"kind": "pixels", "scale": float(ds.scale),
                                   "bits": config.input_bits})
    levels = len(config.input_threshold)
    return InputSpec(width=pixels * levels, shape=tuple(ds.shape),
                     encoding=make_encoding(ds.scale, config.input_threshold))


def _kind_options(config):
    """The options beyond W1A1 that a run used, for provenance and metrics (none: ``{}``, so
    W1A1 runs record what they always did)."""
    options = {}
    if config.weights != "binary":
        options["weights"] = config.weights
    if config.input_bits != 1:
        options["input_bits"] = config.input_bits
    if config.act_bits != 1:
        options["act_bits"] = config.act_bits
    if config.act_bits != 1 or config.weights != "binary":
        options["quantizer"] = config.quantizer
    return options


def train_and_export(config=None, **overrides):
    """Train a binarized MLP or CNN, export it exactly and (if ``config.out``) write the four files.

    Parameters
    ----------
    config : TrainConfig or None
        The run; keyword ``overrides`` replace its fields (``train_and_export(epochs=5)``).

    Returns
    -------
    TrainResult
        Metrics, the exported model, the network and the written paths.

    Raises
    ------
    BnnflowError
        Bad configuration or data (before anything is written).
    OutputError
        ``config.out`` cannot be written: checked before training, and again on writing.
    ExportError
        If the export cannot reproduce the network exactly; nothing is written.
    """
    config = TrainConfig(**{**asdict(config or TrainConfig()), **overrides}).resolved()
    if config.out is not None:
        check_output_dir(config.out, "--out")
    if config.data_dir is not None:
        config.data_dir = str(config.data_dir)
    ds = load_dataset(config.dataset, data_dir=config.data_dir, split_seed=config.split_seed,
                      test_fraction=config.test_fraction)
    spec = _input_spec(config, ds)
    top = (1 << spec.bits) - 1
    x_train = _pm1(spec.encode(ds.x_train), top)
    x_test = _pm1(spec.encode(ds.x_test), top)
    y_train = torch.from_numpy(ds.y_train)
    y_test = torch.from_numpy(ds.y_test)
    histories = {}
    float_accuracy = None
    start = time.perf_counter()
    with _deterministic(config.seed, config.threads), _progress(config.progress) as progress:
        net, image_shape = _binary_net(config, spec, ds)
        histories["binary"] = train_network(
            net, x_train, y_train, x_test, y_test, epochs=config.epochs,
            batch_size=config.batch_size, lr=config.lr, seed=config.seed, progress=progress,
            label=f"{config.preset} {config.dataset}", shift=config.augment_shift,
            image_shape=image_shape, background=-float(top),
            channels_last=len(image_shape) == 3
            and config.conv)
        train_seconds = time.perf_counter() - start
        classes_torch = _predict(net, x_test).numpy()
        if config.float_baseline:
            histories["float"], float_accuracy = _float_baseline(config, ds, progress)
    test_accuracy = float(np.mean(classes_torch == ds.y_test))
    provenance = {"preset": config.preset, **config.topology(),
                  "dataset": config.dataset, "data_dir": config.data_dir,
                  "split_seed": config.split_seed, "test_fraction": config.test_fraction,
                  "seed": config.seed, "epochs": config.epochs, "test_accuracy": test_accuracy,
                  "bnnflow_version": __version__}
    provenance.update(_kind_options(config))
    provenance["numerics"] = numerics.state()
    model = export_model(net, spec, ds.classes, provenance)
    classes_golden = golden.run_images(model, ds.x_test).classes
    agreement = float(np.mean(classes_golden == classes_torch))
    golden_accuracy = float(np.mean(classes_golden == ds.y_test))
    if agreement != 1.0:
        raise ExportError(f"export is not exact: the golden model agrees with PyTorch on "
                          f"{agreement:.4%} of test images; nothing was written")
    provenance["golden_accuracy"] = golden_accuracy
    masks = [layer.mask for layer in model.layers if hasattr(layer, "mask")]
    if masks:
        provenance["zero_weights"] = round(float(1 - np.mean(np.concatenate(
            [z.reshape(-1) for z in masks]))), 4)
    if float_accuracy is not None:
        provenance["float_accuracy"] = float_accuracy
    model = artifact.BnnModel(layers=model.layers, input=model.input, classes=model.classes,
                              provenance=provenance)
    metrics = {
        "dataset": config.dataset, "preset": config.preset, **config.topology(),
        "seed": config.seed, "split_seed": config.split_seed,
        "test_fraction": config.test_fraction, "epochs": config.epochs,
        "batch_size": config.batch_size, "lr": config.lr,
        "input_threshold": (None if spec.bits > 1 else config.input_threshold[0]
                            if spec.levels == 1 else list(config.input_threshold)),
        "input_encoding": spec.encoding, "dropout": config.dropout,
        "augment_shift": config.augment_shift, "n_train": len(ds.y_train), "n_test": len(ds.y_test),
        "train_seconds": train_seconds, "test_accuracy": test_accuracy,
        "golden_accuracy": golden_accuracy, "agreement": agreement,
        "history": histories["binary"], "numerics": provenance["numerics"],
    }
    metrics.update(_kind_options(config))
    if "zero_weights" in provenance:
        metrics["zero_weights"] = provenance["zero_weights"]
    if float_accuracy is not None:
        metrics["float_accuracy"] = float_accuracy
        metrics["float_history"] = histories["float"]
    result = TrainResult(metrics=metrics, model=model, net=net)
    if config.out is not None:
        result.paths, result.checksum = _write_outputs(Path(config.out), config, ds, model, net,
                                                       metrics, histories)
        metrics["checksum"] = result.checksum
    return result


def _write_outputs(out, config, ds, model, net, metrics, histories):
    """Write the four files all-or-nothing: temporary files, renamed only if all succeed."""
    if out.exists() and not out.is_dir():
        raise BnnflowError(f"--out {out} exists and is not a directory; choose another path")
    created = not out.exists()
    paths = {"model": out / "model.bnn", "metrics": out / "metrics.json",
             "plot": out / "training.png", "checkpoint": out / "checkpoint.pt"}
    try:
        with contextlib.ExitStack() as stack:
            tmp = {key: stack.enter_context(atomic_path(p)) for key, p in paths.items()}
            checksum = artifact.save(model, tmp["model"])
            ckpt = checkpoint_dict(config, net, model.input.encoding)
            torch.save(ckpt, tmp["checkpoint"])
            plot_histories(tmp["plot"], histories)
            text = json.dumps({**metrics, "checksum": checksum}, indent=2) + "\n"
            tmp["metrics"].write_text(text, encoding="utf-8")
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    return {k: str(v) for k, v in paths.items()}, checksum
