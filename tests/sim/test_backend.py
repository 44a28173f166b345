"""The back-end registry: one entry per simulator, each with the one ``simulate`` signature."""

from types import SimpleNamespace

import pytest

from bnnflow.errors import BnnflowError
from bnnflow.sim import tools
from bnnflow.sim.backend import BACKENDS, SimJob, SimResult


def test_every_simulator_has_a_backend():
    assert list(BACKENDS) == list(tools.SIMULATORS)


class _Unbuildable:
    """A design whose generation fails: the back end must report it before any build."""

    model = SimpleNamespace(layers=())

    def component(self, debug_taps=False):
        raise ValueError("no such folding")

    verilog = component


@pytest.mark.parametrize("simulator", list(BACKENDS))
def test_each_backend_takes_a_job_and_reports_a_bad_design(simulator):
    with pytest.raises(BnnflowError, match="^cannot generate the design: no such folding$"):
        BACKENDS[simulator](_Unbuildable(), SimJob([1], [1]))


def test_result_from_bench_keeps_every_recorded_field():
    data = {"outputs": {"timing": [1], "main": [2]}, "in_edges": {"timing": [0], "main": [5]},
            "out_edges": {"timing": [3], "main": [9]}, "stuck": {"timing": False, "main": True},
            "tap_data": [[4]], "cycles": 12, "latency": 3, "ii": 4.0,
            "reset": {"edge": 7, "restart": 0, "in_flight": 1, "input_waiting": True},
            "stale": [[8, 6]]}
    result = SimResult.from_bench(data, sidecar={"ii": 4}, loop_seconds=None, sim_seconds=2.0,
                                  build_seconds=1.0)
    for key, value in data.items():
        assert getattr(result, key) == value, key
    assert (result.loop_seconds, result.sim_seconds, result.build_seconds) == (0.0, 2.0, 1.0)
    assert result.sidecar == {"ii": 4}
