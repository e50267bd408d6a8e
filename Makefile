# Two commands on a fresh machine: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REPO ?= .
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install run test lint bench bench-context clean

$(BIN)/agentrt: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/agentrt

install: $(BIN)/agentrt

run: install
	$(BIN)/agentrt run code-analysis --param repo=$(REPO)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m bench

bench-context: install
	$(BIN)/python -m bench.context_selection $(BENCH_ARGS)

clean:
	rm -rf .agentrt .pytest_cache build *.egg-info
