# Two entry points: `make run` (the main job: `rnnkit train` on its default config, a char LSTM
# on Tiny Shakespeare) and `make test` (lint + the test suite).
# Both create the virtual environment themselves. torch is pinned to the CPU wheel
# (an unpinned torch pulls a multi-GB CUDA build).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: run test lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH) -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH) -e '.[dev]'

run: install
	$(BIN)/rnnkit train

lint: install-dev
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

test: lint
	$(BIN)/python -m pytest src tests examples

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
