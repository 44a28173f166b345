"""The hardware side reads the artifact with numpy: it must never import torch."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["bnnflow.hw", "bnnflow.sim", "bnnflow.boards",
                                     "bnnflow.model.artifact", "bnnflow.model.golden",
                                     "bnnflow.model.data", "bnnflow.cli"])
def test_no_torch_outside_training(package):
    code = (f"import importlib, pkgutil, sys\n"
            f"m = importlib.import_module({package!r})\n"
            f"for info in pkgutil.walk_packages(getattr(m, '__path__', []), m.__name__ + '.'):\n"
            f"    if not info.name.rsplit('.', 1)[-1].startswith('test'):\n"
            f"        importlib.import_module(info.name)\n"
            f"if hasattr(m, 'build_parser'):\n"
            f"    m.build_parser()\n"
            f"print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
