"""A new snapshot lands -> its dataset's asset event carries the hash -> retraining uses it."""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from operators.run_kind import triggering_dataset_hash
from steps.catalog.retraining import dataset_asset_uri, load_retraining
from trainyard.local_airflow import load_dag, run_dag

pytestmark = pytest.mark.slow


def asset_events() -> list[tuple[str, dict]]:
    with sqlite3.connect(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db") as db:
        rows = db.execute(
            "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id"
        ).fetchall()
    return [(uri, json.loads(extra) if isinstance(extra, str) else extra) for uri, extra in rows]


def test_a_new_snapshot_emits_its_asset_event_with_the_hash_and_an_unchanged_one_does_not(airflow_db, store_root):
    before = len(asset_events())
    first = run_dag("dataset_snapshots", {})
    assert first.state == "success", first.failed_tasks
    new_events = asset_events()[before:]
    assert {uri for uri, _ in new_events} == {dataset_asset_uri("digits"), dataset_asset_uri("intents")}
    assert all(len(extra["dataset_hash"]) == 64 for _, extra in new_events)

    again = run_dag("dataset_snapshots", {})  # same data: nothing new lands, no event
    assert again.state == "success"
    assert len(asset_events()) == before + len(new_events)


def test_each_retraining_dag_is_scheduled_on_its_dataset_asset_or_its_cron():
    for entry in load_retraining():
        dag = load_dag(entry.dag_id)
        schedule = dag.timetable
        assert dataset_asset_uri(entry.dataset) in repr(schedule.asset_condition)
        assert entry.cron in repr(schedule.timetable) and dag.catchup is False


@dataclass(frozen=True)
class AssetKey:
    """What the context's triggering_asset_events is keyed by: something with a uri."""

    uri: str


def test_retraining_plan_takes_the_dataset_hash_from_the_newest_triggering_event():
    asset = AssetKey(uri=dataset_asset_uri("digits"))
    other = AssetKey(uri=dataset_asset_uri("intents"))
    def event(dataset_hash: str, minute: int) -> SimpleNamespace:
        return SimpleNamespace(extra={"dataset_hash": dataset_hash}, timestamp=datetime(2026, 1, 27, 3, minute, tzinfo=UTC))

    # Batched events arrive in no defined order (the e2e tier once got the older one last).
    context = {"triggering_asset_events": {
        other: [event("i" * 64, 59)],
        asset: [event("b" * 64, 30), event("a" * 64, 5), SimpleNamespace(extra={}, timestamp=datetime(2026, 1, 28, tzinfo=UTC))],
    }}
    assert triggering_dataset_hash(context, "digits") == "b" * 64
    assert triggering_dataset_hash({"triggering_asset_events": {}}, "digits") is None
