# The two commands of the quickstart: `make dev` and `make test`. Both build the virtualenv
# from nothing on first use (Python >= 3.11 on PATH as python3, or PYTHON=...).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: dev worker test lint typecheck unit integration schemas readme clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "bouncewatch needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## Run the whole service on one machine: an embedded broker, the worker, demo traffic.
dev: $(STAMP)
	$(BIN)/bouncewatch dev --demo

## Run a worker against the Kafka cluster named by BOUNCEWATCH_KAFKA_BOOTSTRAP_SERVERS.
worker: $(STAMP)
	$(BIN)/bouncewatch worker

## Lint, type-check and run every test (unit and integration, on a real Apache Kafka broker).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	HELM="$$(bash scripts/ensure_helm.sh)" $(BIN)/python -m pytest -ra

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not integration"

integration: $(STAMP)
	$(BIN)/python -m pytest -ra -m integration

## Regenerate the checked-in JSON Schemas from the pydantic models.
schemas: $(STAMP)
	$(BIN)/python -m schemas.export

## Regenerate README.md's settings table from the Settings model.
readme: $(STAMP)
	$(BIN)/python scripts/update_readme.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .bouncewatch-data
