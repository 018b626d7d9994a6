"""Shared fixtures. Airflow is pointed at a throwaway SQLite home before anything imports it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Nothing from the shell that runs the suite may steer it (a TRAINYARD_PRODUCTION=1, a
# TRAINYARD_NUM_THREADS, an AIRFLOW__DATABASE__SQL_ALCHEMY_CONN pointing at a real database):
# every project and Airflow setting the tests depend on is cleared, then set here or by a fixture.
for _name in [n for n in os.environ if n.startswith(("TRAINYARD_", "AIRFLOW__")) or n in ("AIRFLOW_HOME", "AIRFLOW_CONFIG")]:
    del os.environ[_name]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="trainyard-tests-"))
os.environ["TRAINYARD_HOME"] = str(_SESSION_HOME)
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")

pytest_plugins = ["tests.minio_server", "tests.registry_server", "tests.trainer_images"]


# A test that starts a server (or builds a tool) through one of these fixtures must carry the
# marker that keeps it out of the tiers promising no servers (Makefile: test-fast, and the rest).
SERVER_FIXTURE_MARKERS = {
    "minio_server": "minio",
    "private_minio_server": "minio",
    "minio_store": "minio",
    "oci_registry": "registry",
    "oci_registry_token_auth": "registry",
    "airflow": "e2e",
    "api": "e2e",
    "compose_cmd": "slow",
    "compose_stack": "compose",
}


def pytest_collection_modifyitems(config, items):
    unmarked = [
        f"{item.nodeid} uses {fixture} but is not marked {marker}"
        for item in items
        for fixture, marker in SERVER_FIXTURE_MARKERS.items()
        if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None
    ]
    if unmarked:
        raise pytest.UsageError("tests that start a server must carry its marker:\n  " + "\n  ".join(unmarked))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture
def store_root(tmp_path, monkeypatch) -> Path:
    """A fresh local store for one test, selected through the same env a user sets."""
    root = tmp_path / "store"
    monkeypatch.setenv("TRAINYARD_STORE", "local")
    monkeypatch.setenv("TRAINYARD_STORE_ROOT", str(root))
    monkeypatch.setenv("TRAINYARD_STAT_CACHE", str(tmp_path / "stat-cache.sqlite"))
    return root


@pytest.fixture
def local_store(store_root):
    from steps.store.local import LocalStore

    return LocalStore(store_root)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised SQLite Airflow metadata DB for dag.test()."""
    from trainyard.local_airflow import ensure_airflow_db

    ensure_airflow_db()
    return Path(os.environ["AIRFLOW_HOME"])


def write_digits_dataset(root: Path, rows: int = 300, *, label_of=lambda i: i % 10) -> Path:
    """A digits-schema dataset in `root`, generated from scikit-learn's bundled digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text("id,name\n" + "".join(f"{i},{i}\n" for i in range(10)))
    header = "id,label," + ",".join(f"p{i}" for i in range(64)) + "\n"
    lines = []
    for i in range(rows):
        image = digits.data[i]
        lines.append(f"d{i:05d},{int(digits.target[i])}," + ",".join(str(int(v)) for v in image) + "\n")
    (root / "examples.csv").write_text(header + "".join(lines))
    return root


def run_cli(*args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainyard.cli", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout, cwd=PROJECT_ROOT,
    )
