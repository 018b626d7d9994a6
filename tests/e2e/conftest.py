"""Session-wide real Airflow (Postgres + api-server, scheduler, dag-processor, triggerer)
for the e2e tier. Starting it costs 30-90 s on 2 cores, so every e2e test shares one stack.

The stack's tasks store everything in the session's real MinIO, with the keys only in the
minio_default connection (as in production), and read a copy of the demo datasets, so a test
can land new data without touching the checkout. The stack's start has its own deadline
(STACK_START_TIMEOUT_S): a slow machine fails here with the stack's logs, not inside the
first test's timeout."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from steps.store import StoreSettings
from tests.e2e.airflow_api import AirflowClient
from tests.minio_server import MinioServer, unique_bucket_prefix

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "tests" / "artifacts"
# Overridable so a patched copy of the DAGs can be tried against the same tests.
DAGS_DIR = Path(os.environ.get("TRAINYARD_E2E_DAGS", REPO_ROOT / "dags"))
STACK_START_TIMEOUT_S = 900.0  # migrate + four components on a loaded 2-core machine

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import airflow_stack  # noqa: E402  (scripts/ is not a package)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


@dataclass(frozen=True)
class StackData:
    """Where the stack's tasks keep things: a copy of the datasets, and MinIO buckets."""

    datasets_dir: Path
    store_settings: StoreSettings


@pytest.fixture(scope="session")
def stack_data(minio_server: MinioServer) -> Iterator[StackData]:
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-e2e-data-"))
    datasets_dir = workdir / "datasets"
    shutil.copytree(REPO_ROOT / "datasets", datasets_dir)
    catalog = yaml.safe_load((REPO_ROOT / "config" / "datasets.yaml").read_text())
    for entry in catalog.values():
        entry["source"] = str(datasets_dir / Path(entry["source"]).name)
    (workdir / "datasets.yaml").write_text(yaml.safe_dump(catalog))
    yield StackData(datasets_dir, minio_server.settings(bucket_prefix=unique_bucket_prefix()))
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow(artifacts_dir: Path, stack_data: StackData, minio_server: MinioServer) -> Iterator[airflow_stack.AirflowStack]:
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-e2e-"))
    host, port = minio_server.endpoint.split(":")
    stack = airflow_stack.AirflowStack(
        bundles={"dags-folder": DAGS_DIR},
        workdir=workdir,
        extra_env={
            # The project's caches stay inside the stack's temp dir.
            "TRAINYARD_HOME": str(workdir / "trainyard_home"),
            "TRAINYARD_DATASETS_CATALOG": str(stack_data.datasets_dir.parent / "datasets.yaml"),
            "TRAINYARD_STORE": "minio",
            "TRAINYARD_MINIO_BUCKET_PREFIX": stack_data.store_settings.bucket_prefix,
            # Keys only in the connection, as docker-compose.yml does it.
            "AIRFLOW_CONN_MINIO_DEFAULT": json.dumps({
                "conn_type": "generic", "host": host, "port": int(port), "login": minio_server.access_key,
                "password": minio_server.secret_key, "extra": {"secure": False},
            }),
        },
    )
    try:
        stack.start(timeout_s=STACK_START_TIMEOUT_S)
        yield stack
    finally:
        stack.stop()
        # Component and task logs outlive the temp dir so a red CI run can be read.
        logs_copy = artifacts_dir / "e2e-airflow-logs"
        shutil.rmtree(logs_copy, ignore_errors=True)
        if stack.log_dir.exists():
            shutil.copytree(stack.log_dir, logs_copy)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def api(airflow: airflow_stack.AirflowStack) -> AirflowClient:
    return AirflowClient(airflow.base_url, airflow.admin_user, airflow.admin_password)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per UI test module (tests/e2e/trigger_form.py). Not per session:
    Playwright's sync API keeps an event loop running in the main thread while it is open, and
    every later test that calls asyncio.run() (the Kubernetes provider does) would fail."""
    from tests.e2e import trigger_form

    with trigger_form.chromium() as browser:
        yield browser
