"""Builders for pipeline records used across tests (real steps, small data)."""
from __future__ import annotations

from pathlib import Path

from steps.catalog.catalog import Catalog
from steps.data.snapshot import snapshot_dataset
from steps.lifecycle.plan import parse_request, plan_run
from steps.project_root import PROJECT_ROOT


def catalog() -> Catalog:
    return Catalog.load(PROJECT_ROOT / "config" / "datasets.yaml", PROJECT_ROOT / "config" / "algorithms.yaml")


def make_plan(run_id: str, *, dataset="digits", algorithm="digits-cnn", seed=7, epochs=2, promote=True, **extra):
    request = parse_request(
        dict(dataset=dataset, algorithm=algorithm, epochs=epochs, learning_rate=0.01, batch_size=64, seed=seed,
             promote=promote, **extra)
    )
    return plan_run(
        request, catalog(), dag_id="tests", airflow_run_id=run_id, logical_date=None, executor="subprocess",
        split_seed=11, test_fraction=0.2, num_threads=1,
    )


def snapshot_of(store, dataset="digits", source: Path | None = None):
    source = source or catalog().dataset(dataset).source
    return snapshot_dataset(store, dataset, source).snapshot
