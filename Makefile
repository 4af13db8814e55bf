# Spectr: one entry point for people and CI. `make run` and `make test` are the README's two.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Where `make run` serves: make run PORT=8080 HOST=0.0.0.0. HOST counts only on make's command
# line: many shells hold the machine's name in a HOST variable of their own.
PORT   ?= 8000
ifneq ($(origin HOST),command line)
HOST   := 127.0.0.1
endif
export SPECTR_INSTANCE_PATH ?= $(CURDIR)/instance
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Stamps: each install runs once, and again when a pyproject.toml changes. `make run` installs
# Spectr alone; the test toolchain (.[dev]: pytest, Playwright, ansible, Molecule...) only
# comes with the targets that need it.
RUNTIME_STAMP := $(VENV)/.spectr-runtime-installed
DEV_STAMP     := $(VENV)/.spectr-dev-installed

.PHONY: install install-dev run test test-fast lint services images collection-lint sanity \
	units collection molecule bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Three distributions live here: the portal (pyproject.toml), spectr-agent (agent/) and
# spectr-proxy (proxy/). The portal depends on spectr-agent, which is on no index: pip takes it
# from the folder named on the same command line.
PROJECTS := pyproject.toml agent/pyproject.toml proxy/pyproject.toml

$(RUNTIME_STAMP): $(PROJECTS) | $(BIN)/python
	$(BIN)/pip install -q -e ./agent -e .
	@touch $@

# .[dev] holds the portal and both distributions (with their test extras): both stamps are
# fresh afterwards.
$(DEV_STAMP): $(PROJECTS) | $(BIN)/python
	$(BIN)/pip install -q -e './agent[test]' -e './proxy[test]' -e '.[dev]'
	@touch $(RUNTIME_STAMP) $@

install: $(RUNTIME_STAMP)

install-dev: $(DEV_STAMP)

## Start Spectr on the embedded default (SQLite, in-process worker, local Docker engine).
run: install
	$(BIN)/spectr init
	@echo "The spectr command is $(BIN)/spectr (or run: . $(BIN)/activate)"
	$(BIN)/spectr run --host $(HOST) --port $(PORT)

## Everything CI checks: lint, all tests (slow ones included), the collection's lint, Molecule,
## ansible-test sanity and units, and the collection's tarball (dist/spectr-core-<version>.tar.gz).
test: install-dev services lint collection-lint
	scripts/run-tests.sh

## The quick loop: lint and the tests not marked slow (no Docker, no browsers, no SSH hosts).
test-fast: install-dev lint
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## What the tests need beyond Postgres and Redis: a Docker engine, the test images, sshpass
## (password SSH), the Debian tools the tests run (docker-registry, gcc, pg_dump...),
## Chromium (browser tests) and Prometheus (monitoring tests), all idempotent.
services:
	scripts/ensure-docker.sh
	scripts/ensure-sshpass.sh
	scripts/ensure-test-tools.sh
	tests/browser/install-chromium.sh
	tests/monitoring/install-prometheus.sh
	tests/images/build-base.sh >/dev/null

collection-lint: install-dev
	scripts/collection-check.sh

## ansible-test sanity of the collection (validate-modules, pylint, yamllint, changelog...): about
## 4 minutes the first time (it installs a venv per test from PyPI into ~/.ansible/test), 45 s
## after. `make test` runs it, units and the tarball (scripts/collection-test.sh) after the
## collection's pytest stream.
sanity: install-dev
	scripts/collection-sanity.sh

## ansible-test units of the collection's module utils (tests/unit): its venv comes from PyPI the
## first time (~30 s, kept in ~/.ansible/test/venv/spectr-units), then about 30 s.
units: install-dev
	scripts/collection-units.sh

## The Galaxy tarball dist/spectr-core-<galaxy.yml version>.tar.gz, checked: no test output or
## caches in it, installs offline, ansible-doc reads its modules.
collection: install-dev
	scripts/collection-build.sh

molecule: install-dev services
	tests/collection/run-molecule.sh

bench: install-dev
	@echo "Benchmarks: $$(ls bench/*.py | grep -v _)"; \
	for b in bench/accept.py bench/operations.py; do $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) instance build *.egg-info
