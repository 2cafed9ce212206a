# One command to run the site, one to pass the tests. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 8000
export PYTHONUNBUFFERED := 1

.PHONY: run test bench bench-check system-deps venv check style types coverage clean

## run: set everything up, then serve the site on http://127.0.0.1:$(PORT)/ (Ctrl-C stops it)
run: venv
	$(PY) -m deploy.stack run --port $(PORT)

## test: set everything up, then run the whole test suite against real Redis, uWSGI, nginx, Chromium
test: venv
	WITH_BROWSER=1 bash deploy/install-system-deps.sh
	$(PY) -m pytest -m "not bench" $(PYTEST_ARGS)

## bench-check: the benchmark harness end to end on a tiny N (no figure is judged)
bench-check: venv
	$(PY) -m pytest -m bench $(PYTEST_ARGS)

## bench: run the benchmarks (prints figures, writes bench/results/*.json and plots)
bench: venv
	$(PY) -m bench $(BENCH_ARGS)

## system-deps: install missing Debian packages (needs root; otherwise prints what to install)
system-deps:
	bash deploy/install-system-deps.sh

$(VENV)/.installed: setup.py deploy/install-system-deps.sh
	bash deploy/install-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test,bench]'
	touch $@

venv: $(VENV)/.installed

style: venv
	$(VENV)/bin/ruff check ws4redis_server webapp workers bench deploy tests

types: venv
	$(VENV)/bin/mypy ws4redis_server

coverage: venv
	$(VENV)/bin/coverage run -m pytest $(PYTEST_ARGS)
	$(VENV)/bin/coverage report --show-missing

clean:
	rm -rf run staticfiles artifacts .pytest_cache
