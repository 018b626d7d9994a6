"""Session-wide real Airflow (Postgres + api-server, scheduler, dag-processor, triggerer)
for the e2e tier. Starting it costs 30-90 s on 2 cores, so every e2e test shares one stack."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.airflow_api import AirflowClient

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "tests" / "artifacts"
# Overridable so a patched copy of the DAGs can be tried against the same tests.
DAGS_DIR = Path(os.environ.get("TRAINYARD_E2E_DAGS", REPO_ROOT / "dags"))

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import airflow_stack  # noqa: E402  (scripts/ is not a package)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="session")
def airflow(artifacts_dir: Path) -> Iterator[airflow_stack.AirflowStack]:
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-e2e-"))
    stack = airflow_stack.AirflowStack(
        bundles={"dags-folder": DAGS_DIR},
        workdir=workdir,
        # The project's tasks keep their store and caches inside the stack's temp dir.
        extra_env={"TRAINYARD_HOME": str(workdir / "trainyard_home")},
    )
    try:
        stack.start()
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


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every UI test (tests/e2e/trigger_form.py)."""
    from tests.e2e import trigger_form

    with trigger_form.chromium() as browser:
        yield browser
