"""bnnflow.numerics: training numerics pinned before torch loads, the same model under every
instruction set."""

import json
import os
import subprocess
import sys

import pytest

from bnnflow import numerics

_VARS = (*numerics.PINNED, numerics.OPT_OUT, "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def _python(code, *args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in _VARS}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True,
                          env={**clean, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


_ENV = ("import os, json; print(json.dumps({k: os.environ.get(k) for k in "
        + repr(list(numerics.PINNED)) + "}))")


def test_importing_bnnflow_pins_what_the_user_left_unset():
    got = json.loads(_python("import bnnflow; " + _ENV))
    assert got == numerics.PINNED
    got = json.loads(_python("import bnnflow; " + _ENV, ATEN_CPU_CAPABILITY="avx2"))
    assert got == {**numerics.PINNED, "ATEN_CPU_CAPABILITY": "avx2"}


@pytest.mark.parametrize("code, env", [("import torch; import bnnflow; ", {}),
                                       ("import bnnflow; ", {numerics.OPT_OUT: "1"})])
def test_nothing_is_pinned_after_torch_or_when_opted_out(code, env):
    got = json.loads(_python(code + _ENV, **env))
    assert got == dict.fromkeys(numerics.PINNED)


def test_state_says_whether_training_is_portable():
    code = "import bnnflow; from bnnflow import numerics; print(numerics.state()['portable'])"
    assert _python(code) == "True"
    assert _python(code, **{numerics.OPT_OUT: "1"}) == "False"
    assert _python("import torch; " + code) == "False"
    # The test workers train as users do (tests/conftest.py imports bnnflow first).
    assert numerics.state() == {"portable": True, "cpu_capability": "DEFAULT",
                                "mkl_cbwr": numerics.PINNED["MKL_CBWR"]}


def test_training_flags_turn_onednn_off_and_back_on():
    import torch

    was = torch.backends.mkldnn.enabled
    with numerics.training_flags():
        assert torch.backends.mkldnn.enabled is False
    assert torch.backends.mkldnn.enabled is was


_TRAIN = """
import sys
import bnnflow
from bnnflow.model.train import train_and_export
r = train_and_export(dataset="digits", epochs=2, progress=False, out=sys.argv[1], preset="custom",
                     stages=[("conv", 6, 3), ("pool", 2), ("dense", 16)])
print(r.checksum, r.metrics["numerics"]["portable"], r.metrics["numerics"]["cpu_capability"])
"""

#: What another CPU would do, on this one: MKL's and oneDNN's code held to SSE4.
_SSE = {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}


@pytest.mark.slow    # four trainings in fresh interpreters, about 25 s
def test_the_same_conv_model_under_every_instruction_set(tmp_path):
    native = _python(_TRAIN, tmp_path / "native")
    assert native.startswith("sha256:") and native.endswith(" True DEFAULT")
    assert _python(_TRAIN, tmp_path / "sse", **_SSE) == native
    # Opted out, the same two runs train different models: oneDNN's kernels follow the ISA
    # (on a CPU with more than SSE4, which PyTorch reports as AVX2 or AVX512).
    out = {isa: _python(_TRAIN, tmp_path / f"out-{isa}", **env, **{numerics.OPT_OUT: "1"})
           for isa, env in (("native", {}), ("sse", _SSE))}
    if not out["native"].endswith(" DEFAULT"):
        assert out["native"].split()[0] != out["sse"].split()[0]
