# Two entry points for a fresh clone (see README "Quick start"):
#   make demo   set up .venv, run the synthetic loop end to end, evaluate it against ground truth
#   make test   set up .venv with dev tools and the optional extras (realsense, ray), run ruff
#               (lint + format check), mypy and pytest
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of torch; an unpinned torch from the index is a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
SHARED ?= $(abspath ../shared)

.PHONY: demo test lint setup setup-dev clean

# pip's own lines show what a first setup is doing (downloads, with their progress bars).
PIP    := $(BIN)/pip install --disable-pip-version-check --progress-bar on

$(BIN)/python:
	@echo "setup: creating $(VENV) (once)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "setup: installing $(TORCH) (CPU) and slamfront with its dependencies (once; minutes)"
	$(PIP) "$(TORCH)"
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "setup: installing $(TORCH) (CPU), slamfront, dev tools and extras (once; minutes)"
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[dev,realsense,ray]"
	touch $@ $(VENV)/.installed

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/slamfront demo $(DEMO_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check slamfront tests tools
	$(BIN)/ruff format --check slamfront tests tools
	$(BIN)/mypy slamfront

# Tests read ../shared (real data, published weights) when it is there and skip what needs it
# otherwise. pytest exits 5 when no test ran, which fails this target.
test: lint
	SLAMFRONT_SHARED="$(SHARED)" SLAMFRONT_WEIGHTS="$(SHARED)/weights" \
	  $(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
