# The README's two commands: `make demo` (set up + encode a generated sample) and `make test`
# (set up everything + run the test suite). Both work on a fresh machine with Python 3.11.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch must come first and be a CPU build: any other torch request pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
DEMO_SECONDS ?= 10
PYTEST_ARGS ?=

.PHONY: demo test setup setup-base system-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Encoding, packaging and validation only (no torch).
setup-base: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# Everything: the CPU torch build first, then the lip-sync, service and Ray extras, dev tools
# and the npm players.
setup: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[lipsync,serve,ray,dev]"
	npm ci --no-audit --no-fund --loglevel=error

# Debian packages the tests use when present (espeak-ng speech, Chromium for playback).
system-deps:
	@if command -v espeak-ng >/dev/null && command -v sox >/dev/null \
		&& command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			espeak-ng sox chromium chromium-driver >/dev/null; \
	else echo "not root: install espeak-ng sox chromium chromium-driver yourself"; fi

demo: setup-base
	$(BIN)/discriminator sample -o raw/sample.mov --seconds $(DEMO_SECONDS) --force
	$(BIN)/discriminator encode raw/sample.mov --force
	$(BIN)/discriminator validate media/sample

test: setup system-deps
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

# ruff + mypy on the base install and dev tools only: no torch, no npm.
lint: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/encode_vs_sequential.py
	$(BIN)/python benchmarks/validate_long.py
	$(BIN)/python benchmarks/lipsync_cpu.py
	$(BIN)/python benchmarks/int8_plan.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/encode_scaling.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache
