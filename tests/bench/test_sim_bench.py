"""bench/sim_bench.py: the median run of a repeated measurement."""

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "sim_bench.py"


@pytest.fixture(scope="module")
def sim_bench():
    return runpy.run_path(str(SCRIPT), run_name="sim_bench")


def _run(cps, passed=True, tag=None):
    return {"cycles_per_second": cps, "passed": passed, "tag": tag}


@pytest.mark.parametrize("figures, chosen", [
    ([5.0], 5.0),
    ([9.0, 1.0, 5.0], 5.0),
    ([4.0, 1.0, 3.0, 2.0], 2.0),          # even count: the lower of the two middle runs
    ([7.0, 3.0, 9.0, 1.0, 5.0, 2.0, 8.0], 5.0),
])
def test_median_run_keeps_the_median_report_and_every_figure(sim_bench, figures, chosen):
    runs = [_run(x, tag=i) for i, x in enumerate(figures)]
    rep = sim_bench["median_run"](runs)
    assert rep["cycles_per_second"] == chosen
    assert rep["tag"] == figures.index(chosen)
    assert rep["repeat"] == len(figures)
    assert rep["cycles_per_second_runs"] == sorted(figures)
    assert rep["passed"] is True
    assert "cycles_per_second_runs" not in runs[0]      # the inputs are not modified


def test_median_run_fails_if_any_run_failed(sim_bench):
    rep = sim_bench["median_run"]([_run(1.0), _run(2.0, passed=False), _run(3.0)])
    assert rep["cycles_per_second"] == 2.0
    assert rep["passed"] is False
    rep = sim_bench["median_run"]([_run(1.0, passed=False), _run(2.0), _run(3.0)])
    assert rep["passed"] is False


def test_repeat_must_be_positive(sim_bench, capsys):
    with pytest.raises(SystemExit) as e:
        sim_bench["main"](["--repeat", "0"])
    assert e.value.code == 2
    assert "--repeat must be at least 1, not 0" in capsys.readouterr().err
