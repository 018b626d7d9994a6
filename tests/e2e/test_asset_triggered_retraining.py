"""One scheduler-driven asset-triggered run on a real Airflow: new data lands, dataset_snapshots
emits the dataset's asset event, the scheduler starts scheduled_retraining from that event, and
the model it registers pins exactly the event's dataset hash."""

from __future__ import annotations

import time

import pytest

from steps.catalog.retraining import dataset_asset_uri
from steps.data.snapshot import snapshot_dataset
from steps.lifecycle.model_registry import load_manifest
from steps.store import open_store
from steps.store.local import LocalStore
from tests.e2e.airflow_api import AirflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.minio]

SNAPSHOTS_DAG = "dataset_snapshots"
RETRAINING_DAG = "scheduled_retraining"  # config/retraining.yaml: digits
RUN_TIMEOUT_S = 1200


# After the shipped partitions and long past: every run of dataset_snapshots (the manual one
# below, or the scheduler's own once unpaused) sees it, so whichever runs first stores the new
# snapshot and emits the one event, and the other finds it stored.
NEW_PARTITION = "2026-01-26"
EVENT_TIMEOUT_S = 600


def land_new_partition(datasets_dir, day: str) -> None:
    """A new dated partition of digits (the stack's own copy): real rows, new ids."""
    rows = (datasets_dir / "digits" / "dt=2026-01-19" / "examples.csv").read_text().splitlines()
    header, body = rows[0], rows[1:101]
    renamed = [f"n{day.replace('-', '')}{i:04d}," + row.split(",", 1)[1] for i, row in enumerate(body)]
    partition = datasets_dir / "digits" / f"dt={day}"
    partition.mkdir()
    (partition / "examples.csv").write_text("\n".join([header, *renamed]) + "\n")


def wait_for_event(api: AirflowClient, dataset_hash: str) -> dict:
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        events = [e for e in api.asset_events(source_dag_id=SNAPSHOTS_DAG)
                  if e["uri"] == dataset_asset_uri("digits") and (e.get("extra") or {}).get("dataset_hash") == dataset_hash]
        if events:
            assert len(events) == 1, f"the new snapshot was announced more than once: {events}"
            return events[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no digits asset event with hash {dataset_hash[:12]} after {EVENT_TIMEOUT_S}s")
        time.sleep(2)


def test_a_new_snapshot_event_starts_retraining_that_registers_a_model_pinning_the_events_hash(
    api: AirflowClient, stack_data, tmp_path
) -> None:
    for dag_id in (SNAPSHOTS_DAG, RETRAINING_DAG):
        api.wait_for_dag(dag_id)
    land_new_partition(stack_data.datasets_dir, NEW_PARTITION)
    new_hash = snapshot_dataset(LocalStore(tmp_path / "store"), "digits", stack_data.datasets_dir / "digits").snapshot.dataset_hash
    api.unpause(RETRAINING_DAG)  # the scheduler starts it from the event; nobody triggers it by hand
    api.unpause(SNAPSHOTS_DAG)
    api.run_to_success(SNAPSHOTS_DAG, timeout_s=RUN_TIMEOUT_S)

    event = wait_for_event(api, new_hash)
    run_id = api.wait_for_triggered_run(event["id"], RETRAINING_DAG, timeout_s=RUN_TIMEOUT_S)
    run = api.wait_for_run(RETRAINING_DAG, run_id, timeout_s=RUN_TIMEOUT_S)
    assert run["state"] == "success", api.explain_run(RETRAINING_DAG, run_id)
    assert run["run_type"] == "asset_triggered"

    registered = api.xcom(RETRAINING_DAG, run_id, "register")
    manifest = load_manifest(open_store(stack_data.store_settings), registered["model_name"], registered["version"])
    assert manifest.dataset.dataset_hash == new_hash == event["extra"]["dataset_hash"]
    assert manifest.airflow.run_id == run_id
