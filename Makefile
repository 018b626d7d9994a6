# Trainyard: `make demo` and `make test` do all setup on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
# Embedded state lives where the CLI puts it ($TRAINYARD_HOME, default ~/.local/share/trainyard), so
# a plain `trainyard models` after `make demo` sees the demo's model; set TRAINYARD_HOME to move both.
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: venv lint demo test test-fast test-containers test-compose test-kubernetes k8s-build k8s-up k8s-down up images bench clean

# --compile-bytecode: uv links packages in without .pyc files, and where PYTHONDONTWRITEBYTECODE is set
# nothing ever writes them, so every process (CLI, task, trainer) would compile Airflow, Great
# Expectations and torch from source on each start: seconds per process (docs/benchmarks.md).
$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	@test -x $(BIN)/python || uv venv --quiet --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) uv pip sync --quiet --compile-bytecode requirements.lock
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

# Test tiers (markers in pyproject.toml; tests/conftest.py refuses a test that starts a server
# without its marker):
#   test-fast        no server, no build, no training: the inner loop (under 2 minutes)
#   test             what CI runs: all but the container, Kubernetes and compose tiers
#   test-containers  trainer images built and run with podman (.ci/run adds it where podman works)
#   test-kubernetes  a real single-node Kubernetes (.ci/run adds it)
#   test-compose     docker-compose.yml for real under podman; cold builds exceed CI's budget
FAST_MARKERS := not (e2e or minio or registry or containers or kubernetes or compose or slow)

test: lint services
	$(BIN)/pytest -p no:cacheprovider -m "not containers and not kubernetes and not compose"

test-fast: lint
	$(BIN)/pytest -p no:cacheprovider -m "$(FAST_MARKERS)"

test-containers: venv services
	bash scripts/build-images.sh --no-push
	$(BIN)/pytest -p no:cacheprovider -m containers

test-compose: venv services
	$(BIN)/pytest -p no:cacheprovider -m compose

# The single-node Kubernetes tier (scripts/kubernetes/, root). k8s-build is a no-op once built;
# a cold build takes 12-25 min of a 2-core machine. k8s-up keeps a cluster running between
# test runs (~20 s to start); the tests then leave it up, and k8s-down stops it.
k8s-build:
	bash scripts/ensure-kubernetes.sh

k8s-up: k8s-build
	bash scripts/kubernetes/up.sh

k8s-down:
	bash scripts/kubernetes/down.sh

# The tests' fixture brings the cluster up and tears down what it started; a cluster that was
# not up before is torn down here as well, so a killed or interrupted pytest leaves nothing.
test-kubernetes: venv k8s-build
	@bash scripts/kubernetes/status.sh >/dev/null || trap 'bash scripts/kubernetes/down.sh' EXIT; \
	status=0; $(BIN)/pytest -p no:cacheprovider -m kubernetes tests/kubernetes || status=$$?; exit $$status

images: venv services
	bash scripts/build-images.sh

up: venv services
	$(BIN)/python scripts/airflow_stack.py up $(if $(PORT),--port $(PORT))

# Every benchmark runs even when an earlier one misses its target (exit 1, its own one line says which
# target and by how much); the last line names the benchmarks that missed, and make exits 1.
BENCHMARKS := snapshot_hashing minio_throughput checkpoint_overhead distributed_scaling hyperparameter_search client_refusal

bench: venv services
	@missed=""; for name in $(BENCHMARKS); do \
		echo "== bench/$$name.py"; $(BIN)/python bench/$$name.py || missed="$$missed $$name"; \
	done; \
	if [ -n "$$missed" ]; then echo "make bench: missed a target (or failed):$$missed"; exit 1; fi

# Removes build caches only: models and snapshots under $TRAINYARD_HOME are the user's.
clean:
	rm -rf .mypy_cache .ruff_cache tests/artifacts bench/results
