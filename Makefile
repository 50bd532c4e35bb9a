# The README's two commands: `make demo` (set up, then run the main job on the embedded
# default) and `make test` (set up, then lint and run the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
# pytest-xdist workers: most tests wait on servers, engines and subprocesses, so 4 on 2 cores.
PYTEST_WORKERS ?= 4

.PHONY: demo test install dev lint format bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.lock core/pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PIP) install -q -c requirements.lock -e 'core[postgres]' $(addprefix -e ,$(PLUGIN_DIRS))
	touch $@

$(VENV)/.dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -q -c requirements.lock -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev

demo: install
	$(BIN)/python scripts/demo.py

test: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python bench/run_all.py

# The documentation site in ./site; --strict turns every warning (a broken link, a page
# missing from the nav) into a failure.
docs: dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV)
