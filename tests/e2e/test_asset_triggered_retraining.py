"""One scheduler-driven asset-triggered run on a real Airflow: new data lands, dataset_snapshots
emits the dataset's asset event, the scheduler starts scheduled_retraining from that event, and
the model it registers pins exactly the event's dataset hash."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

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


# Two new partitions. The event is emitted by a dataset_snapshots run for a past date that sees
# only the first, so the event's hash differs from what the data looks like "now": a retraining
# run that ignored the event and snapshotted current data would pin another hash.
EVENT_PARTITION = "2026-01-26"
EVENT_AS_OF = datetime(2026, 1, 27, tzinfo=UTC)
LATER_PARTITION = "2026-02-02"
EVENT_TIMEOUT_S = 600


def land_partition(datasets_dir: Path, day: str) -> None:
    """A new dated partition of digits (the stack's own copy): real rows, new ids."""
    rows = (datasets_dir / "digits" / "dt=2026-01-19" / "examples.csv").read_text().splitlines()
    header, body = rows[0], rows[1:101]
    renamed = [f"n{day.replace('-', '')}{i:04d}," + row.split(",", 1)[1] for i, row in enumerate(body)]
    partition = datasets_dir / "digits" / f"dt={day}"
    partition.mkdir()
    (partition / "examples.csv").write_text("\n".join([header, *renamed]) + "\n")


def digits_hash(datasets_dir: Path, store_dir: Path, as_of: date | None = None) -> str:
    return snapshot_dataset(LocalStore(store_dir), "digits", datasets_dir / "digits", as_of=as_of).snapshot.dataset_hash


def wait_until_no_run_is_active(api: AirflowClient, dag_id: str) -> None:
    """Let the scheduler's own run (created on unpause) finish before anything consumes events:
    first wait for that run to exist, then for no run to be queued or running."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while not api.list_runs(dag_id):
        if time.monotonic() > deadline:
            raise AssertionError(f"the scheduler created no {dag_id} run within {EVENT_TIMEOUT_S}s of the unpause")
        time.sleep(2)
    while any(r["state"] in ("queued", "running") for r in api.list_runs(dag_id)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{dag_id} still has active runs after {EVENT_TIMEOUT_S}s")
        time.sleep(2)


def event_with_hash(api: AirflowClient, dataset_hash: str) -> dict:
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        events = [e for e in api.asset_events(source_dag_id=SNAPSHOTS_DAG)
                  if e["uri"] == dataset_asset_uri("digits") and (e.get("extra") or {}).get("dataset_hash") == dataset_hash]
        if events:
            assert len(events) == 1, f"the snapshot was announced more than once: {events}"
            return events[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no digits asset event with hash {dataset_hash[:12]} after {EVENT_TIMEOUT_S}s")
        time.sleep(2)


def test_a_new_snapshot_event_starts_retraining_that_registers_a_model_pinning_the_events_hash(
    api: AirflowClient, stack_data, tmp_path
) -> None:
    for dag_id in (SNAPSHOTS_DAG, RETRAINING_DAG):
        api.wait_for_dag(dag_id)
    data = stack_data.datasets_dir
    land_partition(data, EVENT_PARTITION)
    land_partition(data, LATER_PARTITION)
    event_hash = digits_hash(data, tmp_path / "a", EVENT_AS_OF.date())
    assert event_hash != digits_hash(data, tmp_path / "b")  # the event is not about the data as it is now

    # The scheduler's own daily run (on unpause) snapshots today's data while nothing listens.
    api.unpause(SNAPSHOTS_DAG)
    wait_until_no_run_is_active(api, SNAPSHOTS_DAG)
    api.unpause(RETRAINING_DAG)  # from here on the scheduler starts it from events; nobody triggers it
    api.run_to_success(SNAPSHOTS_DAG, logical_date=EVENT_AS_OF, timeout_s=RUN_TIMEOUT_S)

    event = event_with_hash(api, event_hash)
    run_id = api.wait_for_triggered_run(event["id"], RETRAINING_DAG, timeout_s=RUN_TIMEOUT_S)
    run = api.wait_for_run(RETRAINING_DAG, run_id, timeout_s=RUN_TIMEOUT_S)
    assert run["state"] == "success", api.explain_run(RETRAINING_DAG, run_id)
    assert run["run_type"] == "asset_triggered"

    registered = api.xcom(RETRAINING_DAG, run_id, "register")
    manifest = load_manifest(open_store(stack_data.store_settings), registered["model_name"], registered["version"])
    assert manifest.dataset.dataset_hash == event_hash == event["extra"]["dataset_hash"]
    assert manifest.airflow.run_id == run_id
