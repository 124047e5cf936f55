# The two README commands: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
DURATION ?= 60

.PHONY: run test lint typecheck pytest install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned (constraints.txt), so nothing pulls a CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/raytrade run --config configs/default.yaml --duration $(DURATION)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) runs var .mypy_cache .ruff_cache .pytest_cache
