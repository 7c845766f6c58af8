# Hookline's everyday commands. `make run` tries it out; `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DEMO_ENV := WEBHOOKS_REQUIRE_HTTPS=false WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=127.0.0.0/8

.PHONY: run test test-pgbouncer test-without-services lint worker beat web bench install

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(DEMO_ENV) $(PY) manage.py demo

test: install lint
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-pgbouncer

# The tests marked `pgbouncer` again, with every connection (the tests' and their workers') through
# a PgBouncer in transaction mode that the session starts in front of PostgreSQL (tests/pooling.py).
test-pgbouncer: install
	HOOKLINE_TEST_PGBOUNCER=1 $(PY) -m pytest -m pgbouncer

# The suite as a machine with nothing installed runs it, even where PostgreSQL and Redis run:
# looked for on a closed port, they are replaced by SQLite and the embedded broker. Its files
# (the SQLite database, the broker's folders) are its own, so it can run beside `make test`.
NO_SERVICES := DATABASE_URL=postgres://postgres@127.0.0.1:1/hookline \
	CELERY_BROKER_URL=redis://127.0.0.1:1/0 CACHE_URL=locmem:// \
	HOOKLINE_VAR_DIR=$(CURDIR)/var/test-without-services
test-without-services: install
	env -u REQUIRE_SERVICES $(NO_SERVICES) $(PY) -m pytest

# Style, the import layers (pyproject's import-linter contracts) and the types; the receiver
# package's types again under its own, stricter settings (receiver/pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	cd receiver && $(abspath $(VENV))/bin/mypy

web: install
	$(VENV)/bin/gunicorn config.wsgi --bind 127.0.0.1:8000

worker: install
	$(VENV)/bin/celery -A config worker --loglevel INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel INFO

bench: install
	$(PY) manage.py benchmark
