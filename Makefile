# kpibot: every target creates .venv on first use, so a fresh machine needs nothing installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The versions tested, pinned: requirements.lock (runtime, the Docker image) and
# requirements-dev.lock (runtime + dev tools, here). Installing under them as constraints means
# a new major version (pandas 3 once) cannot slip in unnoticed; `make lock` updates them.
LOCK := requirements-dev.lock
COMPILE := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --no-header --annotation-style line

.PHONY: demo test bench check serve clean lock

$(STAMP): pyproject.toml $(LOCK)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

lock: $(STAMP)
	$(BIN)/pip install --quiet uv
	$(COMPILE) --upgrade --output-file requirements.lock
	$(COMPILE) --extra dev --constraint requirements.lock --output-file requirements-dev.lock
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'

demo: $(STAMP)
	$(BIN)/kpibot demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

check: $(STAMP)
	$(BIN)/ruff format --check kpibot tests benchmarks
	$(BIN)/ruff check kpibot tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

serve: $(STAMP)
	$(BIN)/kpibot serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache kpibot.egg-info
