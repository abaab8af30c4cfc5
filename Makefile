# Guichet: `make run` starts everything locally, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install services migrate bench lint typecheck clean image lock

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]" --constraint constraints.txt
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

## ruff check on the whole tree; ruff format --check on the files listed here for now
## (formatting the whole tree at once would collide with work in progress: files join
## this list as they are formatted).
FORMATTED := shared/contract.py shared/ticket_state.py tests/test_boundaries.py tests/integration/test_escalation_timers.py
lint: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check $(FORMATTED)

## mypy, configured in pyproject.toml ([tool.mypy]): strict on the pure rules modules and shared/.
typecheck: install
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis

## Throughput and latency against the raw PostgreSQL limit (prints a table, writes bench/results/latest.json).
## Then the portal's pages beside the API (bench/portal.py), the reports at scale (bench/reporting.py),
## and the email sender draining a backlog with one SMTP connection and with four (bench/mail.py).
BENCH_PORTAL_ARGS ?= --clients 16 --seconds 20
BENCH_REPORTING_ARGS ?= --tickets 1000000
bench: install services
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/portal.py $(BENCH_PORTAL_ARGS)
	$(BIN)/python bench/reporting.py $(BENCH_REPORTING_ARGS)
	$(BIN)/python bench/mail.py --emails 5000 --connections 4

## The container image (Containerfile), with whichever of buildah, podman or docker is installed.
IMAGE ?= guichet:dev
image:
	@tool=$$(for t in buildah podman docker; do command -v $$t >/dev/null && echo $$t && break; done); \
	if [ -z "$$tool" ]; then echo "make image: install buildah, podman or docker"; exit 2; fi; \
	if [ "$$tool" = buildah ]; then buildah bud -f Containerfile -t $(IMAGE) .; \
	else $$tool build -f Containerfile -t $(IMAGE) .; fi

## The exact versions `make install` and the image install (constraints.txt), from pyproject.toml.
lock: install
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --extra test --no-emit-index-url --no-emit-find-links -o constraints.txt pyproject.toml
