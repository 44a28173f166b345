"""Size limits of the package code (issue 22): no module of model/, hw/, sim/, boards/ or
bnnflow/ past 500 lines, no function past 100, so that one concept stays in one place."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("model", "hw", "sim", "boards", "bnnflow")
                 for p in (ROOT / d).glob("*.py"))


def test_the_sources_are_found():
    assert len(SOURCES) > 50 and ROOT / "hw" / "top.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    assert text.count("\n") <= 500, f"{path.name} has {text.count(chr(10))} lines"
    long = [(node.name, node.end_lineno - node.lineno + 1)
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > 100]
    assert long == []
