# The two commands of README.md: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint bench

# Re-installs when pyproject.toml changes; the stamp keeps `make test` fast otherwise.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "CohortSync needs Python 3.11 or newer: run make PYTHON=python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e ".[test,prod]"
	touch $@

install: $(VENV)/.installed

# Set up on the embedded defaults (SQLite, sandbox destinations, demo data) and run everything.
demo: install
	VENV=$(VENV) PY=$(PY) PYTHON=$(PYTHON) scripts/demo.sh

# The whole test suite, on DATABASE_URL (SQLite when unset; CI also runs it on PostgreSQL).
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks on PostgreSQL (docs/benchmarks.md), in their own database, created if missing:
#   make bench                                  100k profiles, all four paths
#   make bench BENCH_ARGS="--large --record"    1M, results appended to docs/benchmarks.md
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cohortsync_bench
bench: install
	$(PY) -m bench.database $(BENCH_DATABASE_URL)
	DEBUG=true DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) manage.py bench $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
