"""Validate a stored snapshot: reuse the stored result when this snapshot was already validated
with the same suite and Great Expectations version (steps/data/validation_cache.py); otherwise
materialize it (which re-verifies every stored byte), run its schema's suite, keep the full report
as a run artifact, and fail with the short list of failed expectations."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.data.schemas import get_schema
from steps.data.validation_cache import ValidationRecord, record_validation, stored_validation, validation_key
from steps.data.validation_report import ValidationFailed, ValidationReport
from steps.store import ArtifactStore
from steps.store.run_layout import RunLayout

log = logging.getLogger(__name__)


class ValidationSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    success: bool
    report_key: str
    expectations_evaluated: int
    failures: list[str]
    suite_sha256: str | None = None
    gx_version: str | None = None
    reused_from: str | None = None  # the run whose validation of this snapshot was reused


def validation_report_key(run_key: str) -> str:
    return RunLayout(run_key).validation_report


def validate_snapshot(
    store: ArtifactStore, dataset: str, dataset_hash: str, schema_name: str, run_key: str
) -> ValidationSummary:
    key = validation_key(dataset, dataset_hash, get_schema(schema_name))
    stored = stored_validation(store, key)
    if stored is not None:
        return _reused(store, stored)
    report = _run_suite(store, dataset, dataset_hash, schema_name)
    report_key = validation_report_key(run_key)
    store.put_bytes(report_key, report.to_json_bytes())  # stored whether it passed or not
    record_validation(
        store, key, success=report.success, checks_evaluated=report.checks_evaluated,
        checks_failed=report.checks_failed, report_key=report_key, run_key=run_key,
    )
    if not report.success:
        raise ValidationFailed(report)
    return ValidationSummary(
        success=True, report_key=report_key, expectations_evaluated=report.checks_evaluated, failures=[],
        suite_sha256=key.suite_sha256, gx_version=key.gx_version,
    )


def _run_suite(store: ArtifactStore, dataset: str, dataset_hash: str, schema_name: str) -> ValidationReport:
    from steps.data.snapshot import load_snapshot, materialize_snapshot
    from steps.data.validation_process import warm_validator

    snapshot = load_snapshot(store, dataset, dataset_hash)
    with tempfile.TemporaryDirectory(prefix="trainyard-validate-") as tmp:
        data_dir = materialize_snapshot(store, snapshot, Path(tmp) / dataset)
        in_warm_interpreter = warm_validator()
        if in_warm_interpreter is not None:
            return in_warm_interpreter(data_dir, schema_name, dataset)
        # Imported here: the module pulls in pandas, and a reused result needs neither it nor GX.
        from steps.data.validate import validate_dataset_dir

        return validate_dataset_dir(data_dir, schema_name, dataset=dataset)


def _reused(store: ArtifactStore, stored: ValidationRecord) -> ValidationSummary:
    key = stored.key
    where = (f"{key.dataset}@{key.dataset_hash[:12]} against suite {key.suite_sha256[:12]} "
             f"(Great Expectations {key.gx_version})")
    if not stored.success:
        # The same bytes fail the same suite the same way: say so with the stored report's words.
        report = ValidationReport.from_json_bytes(store.get_bytes(stored.report_key))
        log.info("validation of %s failed before, in run %s; not validating again", where, stored.run_key)
        raise ValidationFailed(report)
    log.info("validation of %s reused from run %s (%d checks passed; report %s)",
             where, stored.run_key, stored.checks_evaluated, stored.report_key)
    return ValidationSummary(
        success=True,
        report_key=stored.report_key,
        expectations_evaluated=stored.checks_evaluated,
        failures=[],
        suite_sha256=key.suite_sha256,
        gx_version=key.gx_version,
        reused_from=stored.run_key,
    )
