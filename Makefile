# The two commands a newcomer needs: `make demo` and `make test` (`make test-fast` for the inner loop:
# everything except the end-to-end demo/README runs and the slow tests).
# Each creates .venv if missing and installs the project into it (editable).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.unmask-installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench gpu-check install clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev,export,serve]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/unmask demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e and not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

# One GPU: the CUDA path end to end (--device cuda --amp) vs the CPU; without a GPU, its CPU path only.
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu_check.py

clean-venv:
	rm -rf $(VENV)
