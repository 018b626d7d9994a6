"""A snapshot validated once is not validated again: the result is stored under the dataset hash,
the suite's definition hash and the Great Expectations version, and reused while all three match."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from steps.data import validation_cache
from steps.data.schemas import DIGITS, SCHEMAS
from steps.data.validation_cache import stored_validation, suite_sha256, validation_key
from steps.data.validation_report import ValidationFailed
from steps.data.validation_run import validate_snapshot
from steps.store import IntegrityError
from tests.conftest import PROJECT_ROOT, write_digits_dataset
from tests.pipeline_fixtures import snapshot_of


@pytest.fixture
def digits_snapshot(local_store, tmp_path):
    return snapshot_of(local_store, "toy", write_digits_dataset(tmp_path / "toy", rows=150))


def validate(store, snapshot, run_key):
    return validate_snapshot(store, "toy", snapshot.dataset_hash, "digits", run_key)


def test_a_validated_snapshot_is_reused_by_the_next_run_without_importing_great_expectations(
    local_store, store_root, digits_snapshot
):
    first = validate(local_store, digits_snapshot, "run-1")
    assert first.reused_from is None and first.expectations_evaluated > 100

    # A fresh process, as the next run's validate task is: it must answer without loading GX.
    code = (
        "import json, sys; from steps.store.local import LocalStore; "
        "from steps.data.validation_run import validate_snapshot; "
        f"summary = validate_snapshot(LocalStore({str(store_root)!r}), 'toy', {digits_snapshot.dataset_hash!r}, "
        "'digits', 'run-2'); "
        "print(json.dumps({'summary': summary.model_dump(), 'gx': 'great_expectations' in sys.modules, "
        "'pandas': 'pandas' in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    answer = json.loads(out.stdout.splitlines()[-1])
    second = answer["summary"]
    assert second["reused_from"] == "run-1"
    assert second["report_key"] == first.report_key and second["expectations_evaluated"] == first.expectations_evaluated
    assert answer["gx"] is False and answer["pandas"] is False
    assert not local_store.exists("runs/run-2/validation.json")  # nothing was validated again


def test_a_changed_suite_validates_again(local_store, digits_snapshot, monkeypatch):
    validate(local_store, digits_snapshot, "run-1")
    stricter = dataclasses.replace(DIGITS, min_rows=120)
    monkeypatch.setitem(SCHEMAS, "digits", stricter)
    assert suite_sha256(stricter) != suite_sha256(DIGITS)

    again = validate(local_store, digits_snapshot, "run-2")

    assert again.reused_from is None and again.report_key == "runs/run-2/validation.json"
    assert again.suite_sha256 == suite_sha256(stricter)


def test_the_suite_hash_covers_the_code_that_builds_the_suite(tmp_path, monkeypatch):
    before = suite_sha256(DIGITS)
    copy = tmp_path / "data"
    copy.mkdir()
    for name in validation_cache.SUITE_CODE:
        (copy / name).write_bytes((PROJECT_ROOT / "steps" / "data" / name).read_bytes())
    (copy / "validate.py").write_text((copy / "validate.py").read_text() + "\n# one more line\n")
    monkeypatch.setattr(validation_cache, "_DATA_DIR", copy)
    validation_cache._suite_code_sha256.cache_clear()
    try:
        assert suite_sha256(DIGITS) != before
    finally:
        validation_cache._suite_code_sha256.cache_clear()


def test_another_great_expectations_version_validates_again(local_store, digits_snapshot, monkeypatch):
    validate(local_store, digits_snapshot, "run-1")
    monkeypatch.setattr(validation_cache, "gx_version", lambda: "1.999.0")

    again = validate(local_store, digits_snapshot, "run-2")

    assert again.reused_from is None and again.gx_version == "1.999.0"


def test_a_snapshot_that_failed_fails_again_with_the_same_words_without_validating_again(local_store, tmp_path):
    source = write_digits_dataset(tmp_path / "toy", rows=150)
    lines = (source / "examples.csv").read_text().splitlines()
    fields = lines[3].split(",")
    lines[3] = ",".join([fields[0], "42", *fields[2:]])  # label 42 is not in labels.csv
    (source / "examples.csv").write_text("\n".join(lines) + "\n")
    snapshot = snapshot_of(local_store, "toy", source)
    with pytest.raises(ValidationFailed) as first:
        validate(local_store, snapshot, "run-1")

    with pytest.raises(ValidationFailed) as second:
        validate(local_store, snapshot, "run-2")

    assert str(second.value) == str(first.value)
    assert not local_store.exists("runs/run-2/validation.json")


def test_a_stored_result_moved_under_another_snapshots_key_is_refused(local_store, digits_snapshot, tmp_path):
    validate(local_store, digits_snapshot, "run-1")
    other = snapshot_of(local_store, "toy", write_digits_dataset(tmp_path / "other", rows=160))
    genuine = validation_key("toy", digits_snapshot.dataset_hash, DIGITS)
    forged = validation_key("toy", other.dataset_hash, DIGITS)
    local_store.put_bytes(forged.store_key, local_store.get_bytes(genuine.store_key))

    with pytest.raises(IntegrityError, match="altered"):
        stored_validation(local_store, forged)
    with pytest.raises(IntegrityError):
        validate(local_store, other, "run-2")
