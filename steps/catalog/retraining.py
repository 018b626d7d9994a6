"""Per-model retraining configuration (config/retraining.yaml)."""
from __future__ import annotations

from datetime import date
from functools import partial
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.catalog.catalog_file import build_entry, read_catalog_file
from steps.project_root import PROJECT_ROOT

RETRAINING_CONFIG = PROJECT_ROOT / "config" / "retraining.yaml"


class RetrainingEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dag_id: str
    cron: str
    start_date: date
    dataset: str
    algorithm: str
    model_name: str
    params: dict


def load_retraining(path: Path = RETRAINING_CONFIG) -> list[RetrainingEntry]:
    raw = read_catalog_file(path, "retraining schedules")
    return [
        build_entry(path, "retraining schedule", name, partial(_entry, name, spec)) for name, spec in raw.items()
    ]


def _entry(name: str, spec: dict) -> RetrainingEntry:
    return RetrainingEntry(name=name, **spec)


def dataset_asset_uri(dataset: str) -> str:
    return f"trainyard://datasets/{dataset}"
