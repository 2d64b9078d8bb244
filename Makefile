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

.PHONY: install run test lint bench clean server worker deploy serve nightly

# The Prefect server `make server` starts; `make worker`, `make deploy`, `make serve` use it.
PREFECT_SERVER := http://127.0.0.1:4200/api
POOL ?= bati-process
NIGHTLY_ARGS ?=

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Scale-out: BATI_DASK_ADDRESS=tcp://HOST:8786 make run (or nightly, serve, worker) runs the data
# stages (one task per part/bucket group), the grid-search fits and scoring on that Dask cluster,
# whose workers see this folder at the same path.
run: install
	$(BIN)/python -m flows.main --demo

# The Prefect UI on http://127.0.0.1:4200 (state in var/prefect, analytics off); Ctrl-C stops it.
# Prefect's own database on PostgreSQL (several workers, no SQLite locks): asyncpg comes with
# prefect; PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://USER:PASS@HOST:5432/prefect make server
# (tests/integration/test_prefect_postgres.py runs a server and a flow that way).
server: install
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200

# A process worker for the work-pool deployments (deployments/prefect.yaml).
worker: install
	PREFECT_API_URL=$(PREFECT_SERVER) $(BIN)/prefect work-pool inspect $(POOL) >/dev/null 2>&1 \
	  || PREFECT_API_URL=$(PREFECT_SERVER) $(BIN)/prefect work-pool create $(POOL) --type process
	PREFECT_API_URL=$(PREFECT_SERVER) BATI_PROJECT_DIR=$(CURDIR) $(BIN)/prefect worker start \
	  --pool $(POOL)

# Register the work-pool deployments (nightly-pool, nightly-retrain-pool, nightly-score-pool).
deploy: install
	PREFECT_API_URL=$(PREFECT_SERVER) BATI_PROJECT_DIR=$(CURDIR) $(BIN)/prefect --no-prompt \
	  deploy --all --prefect-file deployments/prefect.yaml
	PREFECT_API_URL=$(PREFECT_SERVER) $(BIN)/python -m deployments.alerts  # alert automations

# Or serve the deployments (nightly, nightly-retrain, nightly-score) from this one process.
serve: install
	PREFECT_API_URL=$(PREFECT_SERVER) $(BIN)/python -m deployments.serve

# One night now: NIGHTLY_ARGS='--landing /data/landing' (or BATI_LANDING), or '--demo'.
nightly: install
	$(BIN)/python -m flows.nightly $(NIGHTLY_ARGS)

# Two pytest-xdist workers (the machine's two cores), tests handed out as workers free up.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf var/ .pytest_cache
