# Two entry points (README quick start): `make reproduce` runs the whole study, `make test` runs the tests.
# Both first make sure the pinned environment is installed into $(VENV) (idempotent: reinstalls only when
# pyproject.toml changes).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mbcd-installed
CORES ?= all
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install reproduce test test-fast lint clean-study

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

reproduce: install
	snakemake --cores $(CORES)

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	ruff check mbcd tests && snakemake --lint

clean-study:
	rm -rf data runs results mlflow logs .snakemake
