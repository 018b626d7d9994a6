"""Run a project DAG in-process with `dag.test()` on an embedded SQLite Airflow."""
from __future__ import annotations

import gc
import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

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
    """Create the embedded metadata DB once. In this process, not with `airflow db migrate`: that
    would start a second Python and import Airflow a second time, for the same few SQL statements
    (an empty SQLite DB is created from the ORM and stamped, not migrated step by step)."""
    home = configure_airflow_env()
    marker = home / ".trainyard-db-ready"
    if marker.exists():
        return
    from airflow.utils import db

    try:
        db.upgradedb()
    except Exception as exc:
        raise RuntimeError(f"could not create Airflow's metadata DB in {home}: {exc}") from exc
    marker.write_text("ok\n")


def load_dag(dag_id: str, dags_folder: Path = DAGS_FOLDER):
    """Import the DAG file that defines dag_id (its own file first, then the rest)."""
    own = dags_folder / f"{dag_id}.py"
    candidates = [own] if own.is_file() else []
    candidates += [p for p in sorted(dags_folder.glob("*.py")) if p != own]
    for path in candidates:
        spec = importlib.util.spec_from_file_location(f"trainyard_dag_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise LookupError(f"{path} is not an importable DAG file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if getattr(value, "dag_id", None) == dag_id and hasattr(value, "test"):
                return value
    raise LookupError(f"no DAG {dag_id!r} in {dags_folder}")


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Airflow's in-process start-up (the execution API's versioned routes, the DAG's serialization)
    allocates hundreds of thousands of long-lived objects, and with the default thresholds Python's
    cyclic collector walks all of them again and again: seconds of a DAG run (docs/benchmarks.md).
    For the run, what is already loaded is frozen out of the collector's view and it runs far less
    often; it still runs, so garbage cycles made during a long training are still freed."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@dataclass(frozen=True)
class LocalRun:
    dag_id: str
    run_id: str
    state: str
    wall_time_s: float
    failed_tasks: list[str]
    upstream_failed_tasks: list[str]
    skipped_tasks: list[str] = field(default_factory=list)


def run_dag(dag_id: str, conf: dict, logical_date=None, run_after=None, dags_folder: Path = DAGS_FOLDER) -> LocalRun:
    """One run of dag_id. The run id comes from run_after; running again with the same logical date and
    run_after replaces that run and runs every task again (as clearing it would), under the same run id."""
    ensure_airflow_db()
    dag = load_dag(dag_id, dags_folder)
    started = time.perf_counter()
    kwargs = {"run_conf": conf}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    if run_after is not None:
        kwargs["run_after"] = run_after
    with fewer_collections():
        dagrun = dag.test(**kwargs)
    wall = time.perf_counter() - started
    states = {ti.task_id: str(ti.state).split(".")[-1].lower() for ti in dagrun.get_task_instances()}
    failed = sorted(t for t, s in states.items() if s == "failed")
    upstream_failed = sorted(t for t, s in states.items() if s == "upstream_failed")
    skipped = sorted(t for t, s in states.items() if s == "skipped")
    return LocalRun(dag_id, dagrun.run_id, str(dagrun.state).split(".")[-1].lower(), wall, failed, upstream_failed, skipped)


def preview_training_run(request, settings):
    """What a training_pipeline run of `request` will do (steps/lifecycle/run_preview.py), read
    before Airflow starts; None when that cannot be told here (the DAG's own steps will say why)."""
    if settings.executor != "subprocess":
        return None  # only the embedded trainer and validation run in this process's interpreters
    from datetime import UTC, datetime

    from steps.catalog.catalog import Catalog
    from steps.data.stat_cache import StatCache
    from steps.lifecycle.plan import plan_run
    from steps.lifecycle.run_preview import preview_run
    from steps.store import open_store

    try:
        plan = plan_run(
            request, Catalog.load(settings.datasets_catalog, settings.algorithms_catalog),
            dag_id="training_pipeline", airflow_run_id="preview", logical_date=datetime.now(UTC).date(),
            executor=settings.executor, split_seed=settings.split_seed, test_fraction=settings.test_fraction,
            num_threads=settings.num_threads,
        )
        with StatCache() as cache:
            return preview_run(open_store(settings.store), plan, cache)
    except Exception:  # noqa: BLE001 - a forecast that cannot be made warms nothing; the run reports the cause
        return None


@contextmanager
def warm_interpreters(preview) -> Iterator[None]:
    """Around an embedded run, whose tasks all run in this process: start the interpreters the run
    will need (steps/warm/) now, so their imports overlap Airflow's start-up; end unused ones after."""
    from steps.data.validation_process import prewarm_validator
    from steps.executors.subprocess_executor import prewarm_trainer
    from steps.warm import interpreter

    interpreter.enable()
    try:
        if preview is not None and preview.will_validate:
            prewarm_validator()
        if preview is not None and preview.will_train:
            prewarm_trainer()
        yield
    finally:
        interpreter.discard_all()


def exit_now(code: int) -> NoReturn:
    """End a CLI process that ran the embedded Airflow, skipping interpreter teardown.

    After a run the process holds thousands of modules and Airflow's in-process API threads;
    tearing them down at exit takes seconds (docs/benchmarks.md) and does nothing a finished
    command needs. The atexit handlers still run (Airflow disposes its DB connections, logging
    flushes); then the process leaves."""
    import atexit

    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
