# colorlab: the front door. `make` alone prints this help.
#   make test        unit, integration and notebook (smoke) tests
#   make reproduce   the whole study (PROFILE=cpu by default) into results/
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= cpu
DATA_DIR ?= $(CURDIR)/data
export COLORLAB_DATA := $(abspath $(DATA_DIR))

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Notebooks run in this order by `make reproduce`.
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: help venv test test-fast reproduce readme weights bench data lint clean distclean

help: ## this list
	@echo "colorlab: reproduction study of automatic image colorization"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: PROFILE=$(PROFILE) (smoke|cpu|gpu)  DATA_DIR=$(DATA_DIR)"
	@echo "Notebooks, in order:"; for nb in $(NOTEBOOKS); do echo "  $$nb"; done

# The environment is rebuilt only when the pins or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP) ## create .venv from the pinned versions (skipped when up to date)

# Tests run tiny networks, where a second thread only adds synchronisation (and, on a
# shared machine, threads spinning against other jobs): one thread per process.
test: $(STAMP) ## run every test, notebooks included (smoke profile)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q tests

test-fast: $(STAMP) ## tests without the slow ones (training, notebooks)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q -m "not slow" tests

reproduce: $(STAMP) ## run the whole study: notebooks in order, results/ (PROFILE=cpu)
	$(BIN)/colorlab reproduce --profile $(PROFILE)

readme: $(STAMP) ## rewrite the README's embedded tables from results/tables (a whole reproduce does it too)
	$(BIN)/python -m colorlab.readme

weights: $(STAMP) ## retrain (or load) each paper's shipped model at the cpu preset into weights/
	$(BIN)/colorlab weights build --profile cpu

bench: $(STAMP) ## speed benchmarks into results/bench.json
	$(BIN)/colorlab bench --out results/bench.json

data: $(STAMP) ## check the datasets under DATA_DIR (fetch with `colorlab data fetch NAME`)
	$(BIN)/colorlab data list

lint: $(STAMP) ## byte-compile the library and check notebooks carry no outputs
	$(BIN)/python -m compileall -q lib tests
	$(BIN)/python -m colorlab.notebooks --check-clean $(NOTEBOOKS)
	$(BIN)/python -m colorlab.readme --check

clean: ## remove caches, executed notebooks and trained runs (keeps .venv and data)
	rm -rf .cache results/executed results/runs .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv
	rm -rf $(VENV)
