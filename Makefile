# Escalator: `make run` starts everything locally, `make test` installs and runs the suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
# Use the machine's Python; never download one.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
STAMP := $(VENV)/.installed-$(shell cat uv.lock pyproject.toml shared/pyproject.toml services/*/pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_WORKERS ?= 4

.DEFAULT_GOAL := help
.PHONY: help install run demo test lint fmt clean bench chaos

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP):
	@command -v python3 >/dev/null || { echo "Python 3.11+ is required" >&2; exit 1; }
	@test -x $(UV) || { python3 -m venv $(VENV) && $(PY) -m pip install -q "uv==$(UV_VERSION)"; }
	$(UV) sync --frozen --compile-bytecode
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## Create .venv and install every package (pinned by uv.lock)

run: install ## Start the broker and the five services on SQLite (Ctrl-C stops them)
	$(PY) -m scripts.run

demo: install ## With `make run` up: walk one escalation through all five services
	$(PY) -m scripts.demo

lint: install ## ruff, and mypy over every package, the launcher and the benchmarks
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy -p escalator.shared -p escalator.ingest -p escalator.router \
		-p escalator.sla_timer -p escalator.notifier -p escalator.postmortem
	$(VENV)/bin/mypy scripts bench

test: install lint ## Install, lint, start PostgreSQL if needed, run the whole suite
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-tools.sh
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist load

fmt: install ## Fix what ruff can fix
	$(VENV)/bin/ruff check --fix .

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var .pytest_cache .ruff_cache

bench: install ## Benchmarks on PostgreSQL and the local broker; prints a table
	bash scripts/ensure-postgres.sh
	$(PY) -m bench $(SECTIONS)

chaos: install ## Faults under load (kill -9, broker freeze, PostgreSQL restart, ...), then check every invariant
	bash scripts/ensure-postgres.sh
	$(PY) -m scripts.chaos
