"""Read from the Airflow context what kind of run this is."""
from __future__ import annotations

from typing import Any

from steps.catalog.retraining import dataset_asset_uri


def is_backfill(context: dict[str, Any]) -> bool:
    return "backfill" in str(context["dag_run"].run_type).lower()


def triggering_dataset_hash(context: dict[str, Any], dataset: str) -> str | None:
    """The dataset hash carried by the newest asset event for this dataset, if any."""
    events = context.get("triggering_asset_events") or {}
    uri = dataset_asset_uri(dataset)
    newest = None
    for asset, asset_events in events.items():
        if getattr(asset, "uri", None) != uri:
            continue
        for event in asset_events:
            if (event.extra or {}).get("dataset_hash"):
                newest = event.extra["dataset_hash"]
    return newest
