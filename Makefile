# Agent Registry — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): setup.cfg setup.py pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv (if missing) and install the project with dev extras

run: $(STAMP) ## Serve on AGENT_REGISTRY_BIND (default 0.0.0.0:8080), in-memory store by default
	$(BIN)/gunicorn -c gunicorn.conf.py

# Most tests wait on real server processes rather than compute, so twice as many pytest
# workers as a 2-core machine has cores keep it busy; each file stays on one worker, so a
# module's server fixture starts once. TEST_WORKERS=0: all in this one process.
TEST_WORKERS ?= 4

test: $(STAMP) ## Run the whole test suite (TEST_WORKERS pytest processes, default 4)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP) ## Check style, formatting and types (ruff, ruff format, mypy)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## Rewrite the code in the project's format (ruff format, import order)
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## Run the benchmarks, write bench/results/latest.{md,json} (BENCH_PROFILE=big: scaling.{md,json})
ifeq ($(BENCH_PROFILE),big)
	$(BIN)/python -m bench.scaling
else
	$(BIN)/python -m bench
endif

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
