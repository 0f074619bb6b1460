# Two commands do everything: `make run` (serve with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format openapi bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install  ## start embedded Postgres, migrate, seed demo data if empty, serve
	$(BIN)/baton serve --demo --host $(HOST) --port $(PORT)

test: install  ## lint, format check, and every test against a real Postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

openapi: install  ## regenerate the committed spec from the app
	$(BIN)/baton openapi > openapi/openapi.json

bench: install
	$(BIN)/python bench/engine.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
