"""Validation results kept by content: a result is a pure function of the snapshot's dataset hash,
the suite's definition and the Great Expectations version, so it is stored under exactly those and
a later run on the same snapshot reuses it instead of validating again.

    datasets/validations/<dataset>/<dataset_hash>/<suite_sha256>/gx-<gx_version>.json

Nothing here imports Great Expectations: its version comes from the installed distribution's
metadata, and the suite is identified by what defines it (the schema and the code that turns a
schema into expectations), so a reuse costs a few small reads.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.data.schemas import DatasetSchema
from steps.hashing import canonical_json, sha256_file, sha256_json
from steps.store import ArtifactStore, IntegrityError, ObjectExists, ObjectNotFound, validate_key, validate_name

GX_DISTRIBUTION = "great_expectations"
_DATA_DIR = Path(__file__).resolve().parent
#: The code that decides a validation's outcome besides the schema record: the suites and the
#: pandas check (validate.py), how CSV text becomes cells (dataset_reader.py), and the failure lines
#: a report carries (validation_report.py). Editing any of them is a new suite.
SUITE_CODE = ("validate.py", "dataset_reader.py", "validation_report.py")


def gx_version() -> str:
    """The installed Great Expectations version, without importing it (the import takes seconds)."""
    return importlib.metadata.version(GX_DISTRIBUTION)


@functools.cache
def _suite_code_sha256() -> dict[str, str]:
    return {name: sha256_file(_DATA_DIR / name) for name in SUITE_CODE}


def suite_sha256(schema: DatasetSchema) -> str:
    """The suite's definition hash: the schema record and the code that builds and judges its suite."""
    return sha256_json({"schema": dataclasses.asdict(schema), "code": _suite_code_sha256()})


class ValidationKey(BaseModel):
    """Everything a validation result depends on."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    dataset_hash: str
    schema_name: str
    suite_sha256: str
    gx_version: str

    @property
    def store_key(self) -> str:
        return validate_key(
            f"datasets/validations/{validate_name('dataset', self.dataset)}/{self.dataset_hash}/"
            f"{self.suite_sha256}/gx-{self.gx_version}.json"
        )


def validation_key(dataset: str, dataset_hash: str, schema: DatasetSchema) -> ValidationKey:
    return ValidationKey(
        dataset=dataset,
        dataset_hash=dataset_hash,
        schema_name=schema.name,
        suite_sha256=suite_sha256(schema),
        gx_version=gx_version(),
    )


class ValidationRecord(BaseModel):
    """A stored validation result: its key, the outcome, and the run whose report holds the details."""

    model_config = ConfigDict(frozen=True)

    key: ValidationKey
    success: bool
    checks_evaluated: int
    checks_failed: int
    report_key: str  # the full report, as the validating run stored it
    run_key: str  # the run that validated
    validated_at: str

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))


def stored_validation(store: ArtifactStore, key: ValidationKey) -> ValidationRecord | None:
    """The stored result for exactly this key, or None. A record whose report is gone is no result:
    the run that reuses it must be able to register that report with its model."""
    try:
        record = ValidationRecord.model_validate_json(store.get_bytes(key.store_key))
    except ObjectNotFound:
        return None
    if record.key != key:
        raise IntegrityError(
            f"{key.store_key} holds the validation of {record.key.dataset}@{record.key.dataset_hash[:12]} "
            f"(suite {record.key.suite_sha256[:12]}, GX {record.key.gx_version}), not of the key it is stored "
            "under; it was altered, and is not reused"
        )
    if not store.exists(record.report_key):
        return None
    return record


def record_validation(store: ArtifactStore, key: ValidationKey, *, success: bool, checks_evaluated: int,
                      checks_failed: int, report_key: str, run_key: str) -> ValidationRecord:
    """Keep this run's result for later runs. Two runs validating one snapshot at once both hold the
    same result; the first one stored stays (create-only)."""
    record = ValidationRecord(
        key=key,
        success=success,
        checks_evaluated=checks_evaluated,
        checks_failed=checks_failed,
        report_key=report_key,
        run_key=run_key,
        validated_at=datetime.now(UTC).isoformat(),
    )
    try:
        store.put_bytes(key.store_key, record.to_bytes(), if_absent=True)
    except ObjectExists:
        pass
    return record
