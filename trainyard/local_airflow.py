"""Run a project DAG in-process with `dag.test()` on an embedded SQLite Airflow."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from steps.project_root import PROJECT_ROOT
from steps.store.settings import trainyard_home

DAGS_FOLDER = PROJECT_ROOT / "dags"


def configure_airflow_env() -> Path:
    """Point Airflow at an embedded home (SQLite) unless the user configured one."""
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(trainyard_home() / "airflow")))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    home.mkdir(parents=True, exist_ok=True)
    return home


def ensure_airflow_db() -> None:
    home = configure_airflow_env()
    marker = home / ".trainyard-db-ready"
    if marker.exists():
        return
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("airflow db migrate failed:\n" + "\n".join(proc.stderr.splitlines()[-15:]))
    marker.write_text("ok\n")


def load_dag(dag_id: str):
    """Import the DAG file that defines dag_id (its own file first, then the rest)."""
    own = DAGS_FOLDER / f"{dag_id}.py"
    candidates = [own] if own.is_file() else []
    candidates += [p for p in sorted(DAGS_FOLDER.glob("*.py")) if p != own]
    for path in candidates:
        spec = importlib.util.spec_from_file_location(f"trainyard_dag_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise LookupError(f"{path} is not an importable DAG file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if getattr(value, "dag_id", None) == dag_id and hasattr(value, "test"):
                return value
    raise LookupError(f"no DAG {dag_id!r} in {DAGS_FOLDER}")


@dataclass(frozen=True)
class LocalRun:
    dag_id: str
    run_id: str
    state: str
    wall_time_s: float
    failed_tasks: list[str]
    upstream_failed_tasks: list[str]


def run_dag(dag_id: str, conf: dict, logical_date=None, run_after=None) -> LocalRun:
    """One run of dag_id. The run id comes from run_after; running again with the same logical date and
    run_after replaces that run and runs every task again (as clearing it would), under the same run id."""
    ensure_airflow_db()
    dag = load_dag(dag_id)
    started = time.perf_counter()
    kwargs = {"run_conf": conf}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    if run_after is not None:
        kwargs["run_after"] = run_after
    dagrun = dag.test(**kwargs)
    wall = time.perf_counter() - started
    states = {ti.task_id: str(ti.state).split(".")[-1].lower() for ti in dagrun.get_task_instances()}
    failed = sorted(t for t, s in states.items() if s == "failed")
    upstream_failed = sorted(t for t, s in states.items() if s == "upstream_failed")
    return LocalRun(dag_id, dagrun.run_id, str(dagrun.state).split(".")[-1].lower(), wall, failed, upstream_failed)
