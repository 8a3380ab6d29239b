# Two commands on a fresh clone: `make demo` and `make test`. Each builds .venv itself.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=..."; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cead demo

# the fifteen slowest tests are listed at the end: CI's time varies with the machine, and this says where it goes
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

# every benchmark prints its figures, their targets and PASS/FAIL; the target fails if any benchmark failed
# (httpload.py is bench.py's load helper, http_profile.py and receipt_profile.py profiling tools and http_servers.py
# a comparison of the two WSGI servers: none is a benchmark with a target)
BENCHMARKS := $(filter-out benchmarks/httpload.py benchmarks/http_profile.py benchmarks/receipt_profile.py benchmarks/http_servers.py,$(wildcard benchmarks/*.py))
bench: $(STAMP)
	@status=0; for script in $(BENCHMARKS); do echo "== $$script"; $(BIN)/python $$script || status=1; done; exit $$status

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
