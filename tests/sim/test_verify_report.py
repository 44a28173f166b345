"""The verify report is typed (bnnflow.sim.verify_report.VerifyReport, ResetReport): a real run's
report has exactly the declared keys, with values of the declared kinds."""

import types
import typing

from bnnflow.sim.verify import run_verify
from bnnflow.sim.verify_report import ResetReport, VerifyReport


def _check(value, hint):
    """Whether ``value`` fits the annotation ``hint`` (the simple types the reports use)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_check(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typing.is_typeddict(hint):
        return isinstance(value, dict) and set(value) == set(hint.__annotations__)
    return isinstance(value, hint)


def test_a_run_with_a_reset_has_exactly_the_typed_keys(net, input_bits, build_root):
    rep = run_verify(net.model, simulator="amaranth", inputs=input_bits[:6], fold=net.fold,
                     pipeline=net.pipeline, stall=0.3, seed=2, reset_mid_stream=True,
                     build_root=build_root)
    hints = typing.get_type_hints(VerifyReport)
    assert set(rep) == set(hints)
    for key, hint in hints.items():
        assert _check(rep[key], hint), (key, rep[key])
    reset_hints = typing.get_type_hints(ResetReport)
    assert set(rep["reset_mid_stream"]) == set(reset_hints)
    for key, hint in reset_hints.items():
        assert _check(rep["reset_mid_stream"][key], hint), (key, rep["reset_mid_stream"][key])
    assert rep["passed"] and rep["reset_mid_stream"]["applied"]
