# Guichet: `make run` starts everything locally, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install services migrate bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

services:
	scripts/services-up.sh

migrate: install services
	$(BIN)/guichet migrate

## Start every service in the foreground (Ctrl-C stops them cleanly).
## (On first start, loads the example university + ENT configuration of deploy/config/.)
run: migrate
	$(BIN)/guichet config load --if-empty deploy/config/example.yaml
	@echo "Guichet: open http://localhost:8005/ (the portal; sign in at http://localhost:8005/dev/sign-in)"
	GUICHET_ENV=development $(BIN)/guichet run

## The whole suite, against the real PostgreSQL and RabbitMQ.
test: install services
	$(BIN)/python -m pytest

lint: install
	$(BIN)/python -m ruff check . || echo "ruff is not installed: $(BIN)/pip install ruff"

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis

## Throughput and latency against the raw PostgreSQL limit (prints a table, writes bench/results/latest.json).
bench: install services
	$(BIN)/python bench/run.py $(BENCH_ARGS)
