"""Per-model retraining configuration (config/retraining.yaml)."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

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
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return [RetrainingEntry(name=name, **spec) for name, spec in raw.items()]


def dataset_asset_uri(dataset: str) -> str:
    return f"trainyard://datasets/{dataset}"
