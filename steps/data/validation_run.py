"""Validate a stored snapshot: materialize it, run its schema's suite, keep the full
report as a run artifact, and fail with the short list of failed expectations."""
from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.data.snapshot import load_snapshot, materialize_snapshot
from steps.data.validate import validate_dataset_dir
from steps.data.validation_report import ValidationFailed
from steps.store import ArtifactStore
from steps.store.run_layout import RunLayout


class ValidationSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    success: bool
    report_key: str
    expectations_evaluated: int
    failures: list[str]


def validation_report_key(run_key: str) -> str:
    return RunLayout(run_key).validation_report


def validate_snapshot(
    store: ArtifactStore, dataset: str, dataset_hash: str, schema_name: str, run_key: str
) -> ValidationSummary:
    snapshot = load_snapshot(store, dataset, dataset_hash)
    with tempfile.TemporaryDirectory(prefix="trainyard-validate-") as tmp:
        data_dir = materialize_snapshot(store, snapshot, Path(tmp) / dataset)
        report = validate_dataset_dir(data_dir, schema_name, dataset=dataset)
    key = validation_report_key(run_key)
    store.put_bytes(key, report.to_json_bytes())  # stored whether it passed or not
    if not report.success:
        raise ValidationFailed(report)
    return ValidationSummary(
        success=True, report_key=key, expectations_evaluated=report.checks_evaluated, failures=[]
    )
