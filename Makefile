# Trainyard: `make demo` and `make test` do all setup on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
export TRAINYARD_HOME ?= $(CURDIR)/.trainyard
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: venv lint demo test test-fast test-containers up images bench clean

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	@test -x $(BIN)/python || uv venv --quiet --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) uv pip sync --quiet requirements.lock
	VIRTUAL_ENV=$(CURDIR)/$(VENV) uv pip install --quiet --no-deps -e .
	@touch $@

venv: $(VENV)/.installed

# ruff (pyflakes, bugbear, pyupgrade, import order, Airflow's AIR rules) and mypy; config in pyproject.toml.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# Services the test suite starts itself: MinIO (built from source), the OCI registry,
# PostgreSQL and Chromium (Debian packages).
services:
	bash scripts/ensure-minio.sh
	bash scripts/ensure-compose.sh
	bash scripts/registry.sh install
	bash scripts/install-system-packages.sh

demo: venv
	$(BIN)/trainyard demo

# Everything but the container tier, which `.ci/run` adds where podman works.
test: lint services
	$(BIN)/pytest -p no:cacheprovider -m "not containers"

test-fast: lint
	$(BIN)/pytest -p no:cacheprovider -m "not e2e and not minio and not registry and not containers"

test-containers: venv services
	bash scripts/build-images.sh --no-push
	$(BIN)/pytest -p no:cacheprovider -m containers

images: venv services
	bash scripts/build-images.sh

up: venv services
	$(BIN)/python scripts/airflow_stack.py up

bench: venv services
	$(BIN)/python bench/snapshot_hashing.py
	$(BIN)/python bench/minio_throughput.py
	$(BIN)/python bench/distributed_scaling.py

clean:
	rm -rf .trainyard
