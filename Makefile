# meshlab: `make demo` runs the main job, `make test` runs the whole suite.
# Both create .venv on first use and install what they need, including Debian's
# prometheus and victoria-metrics when run as root or with passwordless sudo.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-oldest lint typecheck pytest bench datasets servers clean

demo: servers $(VENV)/.installed-base
	$(BIN)/meshlab demo

test: servers $(VENV)/.installed-dev lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Three processes, one test file each at a time (module fixtures start their servers once):
# most tests wait on real servers and subprocesses, so 3 beat 2 on two cores.
# PYTEST_ARGS="-n 0" runs it in one process.
XDIST ?= -n 3 --dist loadfile

# pytest exits 5 when it collects nothing: a broken suite, not a pass.
pytest: $(VENV)/.installed-dev
	@$(BIN)/python -m pytest --durations=15 $(XDIST) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: the suite is missing or broken" >&2; fi; \
	exit $$status

# The same suite on the oldest pandas meshlab supports (2.2), in its own venv, less the end-to-end tests
# (marker e2e: notebooks in a Jupyter kernel, the browser, JupyterLab, kubectl, a wheel install, a killed
# promtool build, the SMI server's load test, the bootstrap coverage sweep). They exercise the library code that the rest of the suite covers on both pandas versions, and running
# them twice would take CI past its 20-minute budget.
OLDEST := .venv-oldest
test-oldest: servers
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install -q 'pandas==2.2.*' 'numpy<2.3' -e '.[dev]'
	$(OLDEST)/bin/python -m pytest -q -p no:cacheprovider -m "not e2e" $(XDIST) $(PYTEST_ARGS)

bench: servers $(VENV)/.installed-dev
	$(BIN)/python bench/bench_query_range.py
	$(BIN)/python bench/bench_sim.py

# Rebuild datasets/ from the simulator through a real Prometheus (about a minute).
datasets: servers $(VENV)/.installed-dev
	$(BIN)/python scripts/build_datasets.py

servers:
	@scripts/install-servers

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-base

clean:
	rm -rf $(VENV) $(OLDEST) build *.egg-info .pytest_cache .mypy_cache .ruff_cache out
