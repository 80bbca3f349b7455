# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Downloads are cached outside git (pip's cache, ~/.m2) or in ignored folders (.venv, .stack).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STACK  := $(PY) deploy/local/stack.py
PYTEST_ARGS ?=
RUN_ARGS ?=

.PHONY: help venv jars test test-long unit integration lint run bench stack-up stack-down stack-status clean

help:
	@echo "make run           start the local real stack (Kafka + Hadoop mini cluster), the collector, and a demo job"
	@echo "make test          every test (starts the local stack for the integration tests)"
	@echo "make test-long     every test including the long fault rounds (marker long)"
	@echo "make unit          unit tests only (no stack)"
	@echo "make lint          ruff"
	@echo "make bench         the benchmarks of issue 6 (table + .bench/results-*.json; starts the stack for 4 and 7)"
	@echo "make stack-up | stack-down | stack-status"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

jars: venv
	$(STACK) fetch

test: venv jars lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-long: venv jars lint
	$(PY) -m pytest -m "long or not long" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check collector tests deploy/local/run.py

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: venv jars
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

run: stack-up
	$(PY) deploy/local/run.py $(RUN_ARGS)

# Benchmarks 4 and 7 start Kafka + Hadoop like `make run` (stack.py up) when they are not running.
BENCH_ARGS ?=
bench: venv jars
	$(PY) -m tests.benchmarks $(BENCH_ARGS)

stack-up: venv
	$(STACK) up

stack-down: venv
	$(STACK) down

stack-status: venv
	$(STACK) status

clean: stack-down
	rm -rf .stack
