"""Read from the Airflow context what kind of run this is."""
from __future__ import annotations

from typing import Any

from steps.catalog.retraining import dataset_asset_uri


def is_backfill(context: dict[str, Any]) -> bool:
    return "backfill" in str(context["dag_run"].run_type).lower()


def triggering_dataset_hash(context: dict[str, Any], dataset: str) -> str | None:
    """The dataset hash carried by the newest asset event for this dataset, if any.

    Newest by the event's timestamp: a run the scheduler starts late consumes every event queued
    since (the snapshot of today's data and a later-emitted one, say), and Airflow hands them over
    in no defined order (the dag run's consumed_asset_events relationship has no order_by).
    """
    events = context.get("triggering_asset_events") or {}
    uri = dataset_asset_uri(dataset)
    carrying = [
        event
        for asset, asset_events in events.items()
        if getattr(asset, "uri", None) == uri
        for event in asset_events
        if (event.extra or {}).get("dataset_hash")
    ]
    if not carrying:
        return None
    return max(carrying, key=lambda event: event.timestamp).extra["dataset_hash"]
