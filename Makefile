# The two newcomer commands are `make run` and `make test`; both go through `make install`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Prefect keeps its state inside the project, never in $HOME; no telemetry offline.
export PREFECT_HOME ?= $(CURDIR)/var/prefect
export PREFECT_RESULTS_LOCAL_STORAGE_PATH ?= $(CURDIR)/var/prefect/results
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export BATI_DB_URL ?= sqlite:///$(CURDIR)/var/bati.db

.PHONY: install run test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/python -m flows.main

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf var/ .pytest_cache
