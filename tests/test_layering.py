"""Layering: the hardware side reads the artifact with numpy and never imports torch, and
imports point one way, model <- hw <- sim/boards."""

import ast
import subprocess
import sys
from pathlib import Path

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


LAYERS = {"model": 0, "hw": 1, "sim": 2, "boards": 2}
ROOT = Path(__file__).resolve().parent.parent


def _imported_packages(path, package):
    """The bnnflow subpackages a module imports (absolute or relative, at any depth)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            elif node.level == 1:
                names = [f"bnnflow.{package}"]
            else:
                names = [f"bnnflow.{node.module}" if node.module else "bnnflow"]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "bnnflow" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", list(LAYERS))
def test_imports_point_down_model_hw_then_sim_and_boards(package):
    # model <- hw <- sim, boards: a layer imports only layers below it (sim and boards are
    # siblings and import neither each other). The cli_*.py modules are the command line, the
    # layer above all of them (hw's ``verilog --fold fit --target`` asks boards to place).
    wrong = []
    for path in sorted((ROOT / package).glob("*.py")):
        if path.name.startswith("cli_"):
            continue
        for other in _imported_packages(path, package) & set(LAYERS):
            if other != package and LAYERS[other] >= LAYERS[package]:
                wrong.append(f"{package}/{path.name} imports bnnflow.{other}")
    assert wrong == []


def test_the_import_check_sees_relative_and_absolute_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from ..boards.fit import x\nimport bnnflow.sim.verify\n"
                      "from . import inbuf\nfrom .. import errors\n")
    assert _imported_packages(module, "hw") == {"boards", "sim", "hw"}
