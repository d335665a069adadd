# The two commands of README.md: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Set up on the embedded defaults (SQLite, sandbox destinations, demo data) and run everything.
demo: install
	PY=$(PY) scripts/demo.sh

# The whole test suite, on DATABASE_URL (SQLite when unset; CI also runs it on PostgreSQL).
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
