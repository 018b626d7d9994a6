"""Wiring for dataset_snapshots: per dataset, snapshot then announce (asset event)."""
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, task

from operators.pipeline_tasks import announce_snapshot_task
from steps.catalog.retraining import dataset_asset_uri, load_retraining


@task(multiple_outputs=False)
def snapshot_dataset_task(dataset: str, **context) -> dict:
    from pathlib import Path

    from operators.context import load_catalog, load_settings, open_artifact_store, run_identity
    from steps.data.snapshot import snapshot_dataset
    from steps.data.stat_cache import StatCache

    settings = load_settings()
    _, _, logical_date = run_identity(context)
    with StatCache() as cache:
        outcome = snapshot_dataset(
            open_artifact_store(settings), dataset, Path(load_catalog(settings).dataset(dataset).source),
            as_of=logical_date, cache=cache,
        )
    return outcome.snapshot.ref(created=outcome.created).model_dump(mode="json")


def build_dataset_snapshots_dag() -> DAG:
    datasets = sorted({entry.dataset for entry in load_retraining()})
    with DAG(
        dag_id="dataset_snapshots",
        schedule="@daily",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["trainyard"],
    ) as dag:
        for dataset in datasets:
            asset = Asset(name=f"dataset-{dataset}", uri=dataset_asset_uri(dataset))
            snapshot = snapshot_dataset_task.override(task_id=f"snapshot_{dataset}")(dataset)
            announce_snapshot_task.override(task_id=f"announce_{dataset}", outlets=[asset])(snapshot)
    return dag
