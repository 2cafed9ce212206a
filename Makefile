# One command to run the site, one to pass the tests. Everything they need is installed here.
# Each set of requirements has its own stamp in the venv: `make run` installs the site's pins
# (requirements/site.txt) and the library from the checkout; `make test` adds requirements/test.txt,
# `make bench` requirements/bench.txt. A stamp is redone when its requirements file changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
INSTALL_LOG := $(VENV)/install.log
PORT ?= 8000
# Interpreters `make matrix` gives nox (each Python of the matrix must be on PATH).
PYENV_VERSIONS ?= /root/.pyenv/versions
MATRIX_PATH := $(PYENV_VERSIONS)/3.11.7/bin:$(PYENV_VERSIONS)/3.12.1/bin:$(PYENV_VERSIONS)/3.13.0/bin
export PYTHONUNBUFFERED := 1

.PHONY: run cluster test test-cluster test-library bench bench-check matrix dist system-deps venv check style types coverage clean

## run: set everything up, then serve the site on http://127.0.0.1:$(PORT)/ (Ctrl-C stops it),
## sized for WS_MAX_SOCKETS open WebSockets (default 200,000; deploy/sizing.py derives the workers
## and file limits); REDIS=cluster serves it on a local Redis Cluster and 3 WebSocket nodes, as
## `make cluster`
run: $(VENV)/.site
	@$(PY) -m deploy.stack run --port $(PORT) $(if $(WS_MAX_SOCKETS),--max-sockets $(WS_MAX_SOCKETS)) $(if $(filter cluster,$(REDIS)),--redis cluster --nodes 3)

## cluster: the site on a local Redis Cluster (3 primaries + 3 replicas) and 3 WebSocket nodes
## behind nginx, Django on its own, WS_MAX_SOCKETS shared by the nodes (Ctrl-C stops everything)
cluster: $(VENV)/.site
	@$(PY) -m deploy.stack run --port $(PORT) $(if $(WS_MAX_SOCKETS),--max-sockets $(WS_MAX_SOCKETS)) --redis cluster --nodes 3

## test: the library's own tests (tests/library, LIBRARY_PYTEST_ARGS), then the site's suite
## against real Redis, uWSGI, nginx, Chromium (PYTEST_ARGS), then the Redis Cluster, Sentinel and
## several-nodes tests (make test-cluster, CLUSTER_PYTEST_ARGS). All run; any failing fails.
test: $(VENV)/.test
	WITH_BROWSER=1 bash deploy/install-system-deps.sh
	@status=0; \
	$(PY) -m pytest -c tests/library/pytest.ini tests/library $(LIBRARY_PYTEST_ARGS) || status=$$?; \
	$(PY) -m pytest -m "not bench and not cluster" $(PYTEST_ARGS) || status=$$?; \
	$(PY) -m pytest -m cluster $(CLUSTER_PYTEST_ARGS) || status=$$?; \
	exit $$status

## test-cluster: Redis Cluster, Sentinel and several WebSocket nodes, started by the tests on
## loopback ports (the tests marked `cluster`)
test-cluster: $(VENV)/.test
	bash deploy/install-system-deps.sh
	$(PY) -m pytest -m cluster $(CLUSTER_PYTEST_ARGS)

## test-library: the library's own tests only
test-library: $(VENV)/.test
	$(PY) -m pytest -c tests/library/pytest.ini tests/library $(LIBRARY_PYTEST_ARGS)

## bench-check: the benchmark harness end to end on a tiny N (no figure is judged)
bench-check: $(VENV)/.test $(VENV)/.bench
	$(PY) -m pytest -m bench $(PYTEST_ARGS)

## bench: run the benchmarks (prints figures, writes bench/results/*.json and plots)
bench: $(VENV)/.bench
	$(PY) -m bench $(BENCH_ARGS)

## matrix: the library's tests on its built wheel, every supported Python x Django, and at the
## lowest version of every dependency (noxfile.py; NOX_ARGS="-s lowest" for one session)
matrix: $(VENV)/.test
	PATH="$(MATRIX_PATH):$$PATH" $(VENV)/bin/nox --envdir $(VENV)/nox $(NOX_ARGS)

## dist: build the library's sdist and wheel into dist/ and list the wheel
dist: $(VENV)/.test
	rm -rf dist
	@$(PY) -m build --outdir dist . > $(VENV)/build.log 2>&1 || { tail -40 $(VENV)/build.log; exit 1; }
	@ls -l dist
	@$(PY) -m zipfile -l dist/*.whl

## system-deps: install missing Debian packages (needs root; otherwise prints what to install)
system-deps:
	bash deploy/install-system-deps.sh

# The site: system packages (no browser), the venv, the site's pins and the library in editable mode.
$(VENV)/.site: setup.py pyproject.toml requirements/site.txt deploy/install-system-deps.sh
	@echo "Checking the system packages (deploy/install-system-deps.sh)"
	@bash deploy/install-system-deps.sh
	@test -x $(PY) || { echo "Creating the virtual environment $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "Installing requirements/site.txt and the library (-e .) into $(VENV): about a minute the first time (uWSGI is compiled). Log: $(INSTALL_LOG)"
	@$(PIP) --upgrade pip > $(INSTALL_LOG) 2>&1 || { tail -40 $(INSTALL_LOG); exit 1; }
	@# The whole project was once packaged as django-ws4redis-c10k; the library is its own now.
	@$(PY) -m pip uninstall --quiet --yes django-ws4redis-c10k >> $(INSTALL_LOG) 2>&1 || true
	@$(PIP) -e . -r requirements/site.txt >> $(INSTALL_LOG) 2>&1 || { tail -40 $(INSTALL_LOG); exit 1; }
	@touch $@

$(VENV)/.test: $(VENV)/.site requirements/test.txt
	@echo "Installing requirements/test.txt into $(VENV). Log: $(INSTALL_LOG)"
	@$(PIP) -r requirements/test.txt >> $(INSTALL_LOG) 2>&1 || { tail -40 $(INSTALL_LOG); exit 1; }
	@touch $@

$(VENV)/.bench: $(VENV)/.site requirements/bench.txt
	@echo "Installing requirements/bench.txt into $(VENV). Log: $(INSTALL_LOG)"
	@$(PIP) -r requirements/bench.txt >> $(INSTALL_LOG) 2>&1 || { tail -40 $(INSTALL_LOG); exit 1; }
	@touch $@

venv: $(VENV)/.site

style: $(VENV)/.test
	$(VENV)/bin/ruff check ws4redis_server webapp workers bench deploy tests tests/library setup.py noxfile.py

types: $(VENV)/.test
	$(VENV)/bin/mypy ws4redis_server

coverage: $(VENV)/.test
	$(VENV)/bin/coverage run -m pytest $(PYTEST_ARGS)
	$(VENV)/bin/coverage report --show-missing

clean:
	rm -rf run staticfiles artifacts .pytest_cache dist build .nox *.egg-info
