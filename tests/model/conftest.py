"""Fixtures shared by the model tests: training checkpoints written in the documented format,
and raw images like the digits'."""

import math

import numpy as np
import pytest
import torch

DIGITS_ENCODING = {"kind": "threshold", "scale": 16.0, "threshold": 0.5}


def _make_checkpoint(run_dir, widths, *, seed=0, latent=None, dataset="digits",
                     encoding=DIGITS_ENCODING):
    """Write a checkpoint in the documented format for a net of ``widths = [K0, ..., C]``."""
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for i, (k, n) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        w = latent(n, k, gen) if latent else torch.randn(n, k, generator=gen) * 0.1
        last = i == len(widths) - 2
        bn = {"weight": torch.rand(n, generator=gen) + 0.5,
              "bias": torch.randn(n, generator=gen) * 0.1,
              "running_mean": torch.randn(n, generator=gen) * math.sqrt(k) * 0.3,
              "running_var": torch.rand(n, generator=gen) * k + 1.0,
              "eps": 1e-5, "kind": "output_scale" if last else "batchnorm1d"}
        layers.append({"name": f"fc{i}", "latent_weight": w, "bn": bn})
    ckpt = {"format": "bnnflow-checkpoint", "version": 1,
            "config": {"preset": "tfc", "hidden": list(widths[1:-1]), "dataset": dataset,
                       "data_dir": None, "split_seed": 0, "test_fraction": 0.2, "seed": seed,
                       "epochs": 1, "input_encoding": dict(encoding)},
            "layers": layers, "state_dict": {}}
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, run_dir / "checkpoint.pt")
    return ckpt


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits with the default split (:func:`~bnnflow.model.data.load_dataset`)."""
    from bnnflow.model.data import load_dataset

    return load_dataset("digits")


def _digit_like_images(n, seed=0):
    """Raw 8x8 images with pixel values 0..16, like scikit-learn's digits."""
    return np.random.default_rng(seed).integers(0, 17, size=(n, 8, 8)).astype(np.float64)


@pytest.fixture
def make_checkpoint():
    """``make_checkpoint(run_dir, widths, *, seed, latent, dataset, encoding)``: write
    ``run_dir/checkpoint.pt`` for a net of ``widths = [K0, ..., C]``; returns its dict."""
    return _make_checkpoint


@pytest.fixture
def digit_like_images():
    """``digit_like_images(n, seed=0)``: raw 8x8 images with pixel values 0..16."""
    return _digit_like_images
