"""The harness keeps its promises: the calling shell cannot steer the suite, and a slow server
fixture is not charged to the first test's timeout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import PROJECT_ROOT


def test_trainyard_and_airflow_settings_from_the_shell_do_not_reach_the_tests():
    leaked = {
        "TRAINYARD_PRODUCTION": "1",
        "TRAINYARD_NUM_THREADS": "7",
        "TRAINYARD_SPLIT_SEED": "99",
        "TRAINYARD_STORE": "minio",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://someone@prod-db/airflow",
        "AIRFLOW_CONFIG": "/etc/airflow/airflow.cfg",
    }
    names = sorted(leaked)
    probe = f"import os, json, tests.conftest; print(json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, env={**os.environ, **leaked},
                         capture_output=True, text=True, timeout=300, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {name: None for name in leaked}


def test_a_slow_fixture_is_not_charged_to_the_tests_timeout(tmp_path):
    (tmp_path / "test_probe.py").write_text(textwrap.dedent("""
        import time
        import pytest

        @pytest.fixture
        def slow_server():
            time.sleep(4)  # a server that takes long to start, with its own deadline
            return "up"

        @pytest.mark.timeout(2)
        def test_fast_once_the_server_is_up(slow_server):
            assert slow_server == "up"
    """))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(PROJECT_ROOT / "pyproject.toml"),
         "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout[-2000:]
