"""Training numerics that repeat on every x86-64 machine.

A binarized network amplifies rounding: one dot product that lands on the other side of a
sign flips a weight, and after a few epochs two machines hold different models. PyTorch picks
its CPU kernels by the instruction set it finds (AVX-512, AVX2, ...), MKL its GEMM code by the
CPU, and oneDNN its convolution kernels by ISA and cache sizes; each sums in its own order.
On one AVX-512 machine the default tfc on digits (seed 0) reached 95.0 % with PyTorch's
AVX-512 kernels, 93.6 % with its AVX2 ones and 96.4 % with its portable ones, and only 4 of 36
training runs of ``bench/beyond_bench.py`` repeated on a second machine.

:func:`pin` fixes all three before torch is imported: PyTorch's portable (``default``) kernels
(``ATEN_CPU_CAPABILITY``), MKL's conditional numerical reproducibility in its compatible,
strict mode (``MKL_CBWR``: the same GEMM results on any Intel or AMD x86-64 CPU, aligned or
not), and training runs with oneDNN off (:func:`training_flags`), so that convolutions go
through PyTorch's own unfold and MKL's GEMM. The price is speed (tfc on digits about 10 %,
cnv-mnist about 2x slower to train on 2 cores). Set ``BNNFLOW_NATIVE_NUMERICS=1`` to keep each
library's fastest code instead; :func:`state` records which numerics a model was trained with.
Training uses one thread by default; other thread counts may sum in other orders.
"""

import contextlib
import os
import sys

__all__ = ["OPT_OUT", "PINNED", "pin", "state", "training_flags"]

#: The environment :func:`pin` sets (where the user has not set these variables).
PINNED = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE,STRICT"}

#: Set to a non-empty value other than ``0`` to train with each library's fastest code.
OPT_OUT = "BNNFLOW_NATIVE_NUMERICS"


def _opted_out():
    return os.environ.get(OPT_OUT, "") not in ("", "0")


def pin():
    """Set :data:`PINNED` in ``os.environ`` unless torch is imported already (its kernels are
    chosen by then) or :data:`OPT_OUT` is set; variables the user set are kept. Returns whether
    the pinned values are in the environment."""
    if not _opted_out() and "torch" not in sys.modules:
        for name, value in PINNED.items():
            os.environ.setdefault(name, value)
    return all(os.environ.get(name) == value for name, value in PINNED.items())


def state():
    """The numerics of training in this process: ``{"portable", "cpu_capability",
    "mkl_cbwr"}``; ``portable`` when PyTorch runs its default kernels and MKL its compatible
    mode, as :func:`pin` sets them (oneDNN is off during training either way unless opted
    out)."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    cbwr = os.environ.get("MKL_CBWR")
    return {"portable": (capability == "DEFAULT" and not _opted_out()
                         and (cbwr or "").upper().startswith("COMPATIBLE")),
            "cpu_capability": capability, "mkl_cbwr": cbwr}


@contextlib.contextmanager
def training_flags():
    """oneDNN off while training (unless opted out): its convolution kernels depend on the
    CPU's ISA and caches; PyTorch's own convolution does not."""
    import torch

    if _opted_out():
        yield
        return
    # Only the one switch: torch.backends.mkldnn.flags() also sets (and warns about) TF32.
    was = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = was
