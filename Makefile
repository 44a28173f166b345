# Two entry points: `make demo` (the main job) and `make test` (the whole suite, as CI runs it).
# Both create and reuse .venv; torch is pinned and installed before the project so that pip
# takes the CPU wheel instead of several GB of CUDA packages.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bnnflow-installed
TORCH := torch==2.13.0
JOBS ?= 2

.PHONY: install demo test test-fast lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bnnflow demo

test: $(STAMP)
	@command -v iverilog >/dev/null || { echo "error: iverilog not found: the Icarus tests need it (Debian/Ubuntu: sudo apt-get install iverilog)"; exit 2; }
	$(BIN)/python -m pytest -n $(JOBS) --dist worksteal --runslow --durations=25

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build sim_build demo-out .pytest_cache .ruff_cache
