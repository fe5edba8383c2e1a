# market40 — two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run serve test lint format oracles bench screenshots demo-month clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: install, migrate the SQLite default, seed the demo market if empty, serve.
run: install
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py seed_demo --if-empty
	@echo ""
	@echo "  market40 chạy tại / is serving on http://$(HOST):$(PORT)/"
	@echo "  Quản lý / manager:  http://$(HOST):$(PORT)/manage/   (demo logins above)"
	@echo "  API docs:           http://$(HOST):$(PORT)/api/v1/docs"
	@echo "  Admin:              http://$(HOST):$(PORT)/admin/"
	@echo "  Một tháng trọn vẹn / a whole month:  $(BIN)/python manage.py demo_month --stalls 200"
	@echo ""
	DEBUG=1 $(BIN)/python manage.py runserver $(HOST):$(PORT)

## make test: install, then the whole suite (DATABASE_URL picks the database).
test: install oracles
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Independent decoders used as test oracles (npm vietnam-qr-pay); skipped when npm is absent.
oracles:
	@if command -v npm >/dev/null 2>&1; then \
		[ -d tests/oracles/node_modules ] || npm ci --silent --no-audit --no-fund --prefix tests/oracles; \
	else echo "npm not found: Node oracle tests will be skipped (they fail under CI=true)"; fi

bench: install
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

## make demo-month: one whole month end to end on the configured database (SQLite by default).
demo-month: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_month --stalls $(or $(STALLS),200)

## make screenshots: the browser tests, saving the README screenshots to docs/screenshots/.
screenshots: install
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/e2e -q

clean:
	rm -rf $(VENV) var/*.sqlite3 .pytest_cache
