# The two commands of the quickstart: `make dev` and `make test`. Both build the virtualenv
# from nothing on first use (Python >= 3.11 on PATH as python3, or PYTHON=...).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Every dependency is installed at the exact version (and hash) of a lock file written by
# `make lock`: requirements.lock for the image (runtime and rocksdb extra), requirements-dev.lock
# for the virtualenv (the dev extra: tests, linters). pip itself is pinned here.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
PIP_VERSION := 26.3
# The stamp names the checksum of pyproject.toml and the dev lock: a change of either installs again.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(DEV_LOCK) | cksum | cut -d' ' -f1)

.PHONY: dev worker test lint typecheck unit integration schemas readme lock clean

$(STAMP): pyproject.toml $(DEV_LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "bouncewatch needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==$(PIP_VERSION)
	$(BIN)/python -m pip install -q --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

## Run the whole service on one machine: an embedded broker, the worker, demo traffic.
dev: $(STAMP)
	$(BIN)/bouncewatch dev --demo

## Run a worker against the Kafka cluster named by BOUNCEWATCH_KAFKA_BOOTSTRAP_SERVERS.
worker: $(STAMP)
	$(BIN)/bouncewatch worker

# `make test` runs the tests on pytest-xdist workers: most of the integration tests' time is
# waiting (outages, kills, retries, a worker's start), which overlaps well even on 2 cores;
# each worker starts its own Kafka broker. tests/conftest.py orders the collection so that
# the longest tests start first. PARALLEL= runs them in one process.
PARALLEL ?= -n 4 --dist worksteal

## Lint, type-check and run every test (unit and integration, on a real Apache Kafka broker).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	HELM="$$(bash scripts/ensure_helm.sh)" $(BIN)/python -m pytest -ra $(PARALLEL)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## The tests not marked integration: no child process, no socket (tests/conftest.py refuses
## both), so they pass with networking off (`unshare -rn make unit`).
unit: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not integration"

## The tests that cross a process boundary: helm, openssl, child Pythons, Kafka, DNS, SMTP.
integration: $(STAMP)
	$(BIN)/python -m pytest -ra -m integration

## Regenerate the checked-in JSON Schemas from the pydantic models.
schemas: $(STAMP)
	$(BIN)/python -m schemas.export

## Regenerate README.md's settings table from the Settings model.
readme: $(STAMP)
	$(BIN)/python scripts/update_readme.py

## Resolve the lock files again after a change of dependencies in pyproject.toml, keeping the
## versions already locked where they still fit. LOCK_FLAGS=--upgrade takes the newest of
## everything, LOCK_FLAGS="--upgrade-package slack-sdk" of one package. Python 3.11 on Linux
## (the image's), with hashes; the dev lock keeps the runtime lock's versions.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --python-version 3.11 --python-platform linux \
	--generate-hashes --custom-compile-command "make lock" --quiet $(LOCK_FLAGS)
lock: $(STAMP)
	$(UV_COMPILE) --extra rocksdb --output-file $(LOCK)
	$(UV_COMPILE) --extra dev --constraint $(LOCK) --output-file $(DEV_LOCK)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .bouncewatch-data
