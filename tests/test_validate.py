"""The validate step: each schema rule fails a broken dataset with a message naming the
problem, and passes a good one. Datasets are real CSV files written into tmp_path and
checked by the real Great Expectations suite (one GX context per test process)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from steps.data.dataset_reader import DatasetReadError, read_examples, read_labels
from steps.data.schemas import DIGITS, INTENT, SCHEMAS, UnknownSchema, get_schema
from steps.data.validate import validate_dataset_dir, validate_examples
from steps.data.validation_report import ValidationFailed, ValidationReport

REPO_ROOT = Path(__file__).resolve().parents[1]

INTENT_LABELS = ["book_flight", "cancel", "check_weather", "order_food", "play_music", "set_alarm"]
Row = dict[str, str]


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_labels(root: Path, names: list[str]) -> None:
    write_csv(root / "labels.csv", ["id", "name"], [{"id": str(i), "name": n} for i, n in enumerate(names)])


def intent_rows(count: int = 60) -> list[Row]:
    return [
        {"id": f"i{i:04d}", "text": f"utterance number {i}", "label": str(i % len(INTENT_LABELS))}
        for i in range(count)
    ]


def make_intent(root: Path, edit: Callable[[list[Row]], None] | None = None, count: int = 60) -> Path:
    """A valid intent dataset (balanced, 60 rows), optionally broken by `edit`."""
    rows = intent_rows(count)
    if edit:
        edit(rows)
    write_labels(root, INTENT_LABELS)
    write_csv(root / "examples.csv", ["id", "text", "label"], rows)
    return root


DIGIT_COLUMNS = ["id", "label", *(f"p{i}" for i in range(64))]


def digit_rows(count: int = 120, start: int = 0) -> list[Row]:
    rows = []
    for n in range(start, start + count):
        row = {"id": f"d{n:05d}", "label": str(n % 10)}
        row.update({f"p{i}": str((n * 7 + i * 3) % 17) for i in range(64)})
        rows.append(row)
    return rows


def make_digits(root: Path, edit: Callable[[list[Row]], None] | None = None) -> Path:
    """A valid digits dataset in two dated partitions (2 x 60 rows), optionally broken."""
    rows = digit_rows(120)
    if edit:
        edit(rows)
    write_labels(root, [str(d) for d in range(10)])
    write_csv(root / "dt=2026-01-05" / "examples.csv", DIGIT_COLUMNS, rows[:60])
    write_csv(root / "dt=2026-01-12" / "examples.csv", DIGIT_COLUMNS, rows[60:])
    return root


def failure_message(dataset_dir: Path, schema: str) -> str:
    report = validate_dataset_dir(dataset_dir, schema)
    assert not report.success
    assert json.loads(report.to_json_bytes())["failures"] == report.failures  # storable as an artifact
    with pytest.raises(ValidationFailed) as raised:
        report.raise_if_failed()
    return str(raised.value)


# --- schemas ------------------------------------------------------------------------------


def test_unknown_schema_names_the_registered_ones(tmp_path):
    with pytest.raises(UnknownSchema, match=r"'digit' is not registered; registered: digits, intent"):
        get_schema("digit")
    with pytest.raises(UnknownSchema, match="registered: digits, intent"):
        validate_dataset_dir(make_intent(tmp_path), "intents-v2")


def test_registered_schemas_carry_the_agreed_defaults():
    assert set(SCHEMAS) == {"digits", "intent"}
    assert (DIGITS.min_rows, DIGITS.max_rows, DIGITS.min_class_share) == (100, 1_000_000, 0.02)
    assert (INTENT.min_rows, INTENT.min_class_share) == (50, 0.02)
    assert DIGITS.column_names == tuple(DIGIT_COLUMNS)
    assert INTENT.column_names == ("id", "text", "label")


# --- datasets that pass ---------------------------------------------------------------------


@pytest.mark.parametrize("dataset, schema, rows", [("digits", "digits", 1797), ("intents", "intent", 203)])
def test_shipped_datasets_pass_their_schema(dataset, schema, rows):
    report = validate_dataset_dir(REPO_ROOT / "datasets" / dataset, schema)
    assert report.success, report.summary()
    assert report.failures == []
    assert report.row_count == rows
    assert [c.name for c in report.computed_checks] == ["min_class_share"]


def test_valid_intent_dataset_passes_and_report_round_trips_as_json(tmp_path):
    report = validate_dataset_dir(make_intent(tmp_path), "intent").raise_if_failed()
    assert report.success and report.checks_failed == 0
    assert report.checks_evaluated == len(report.gx_results["structure"]["results"]) + len(
        report.gx_results["values"]["results"]
    ) + 1
    stored = report.to_json_bytes()
    assert ValidationReport.from_json_bytes(stored) == report
    as_json = json.loads(stored)
    checked = {r["expectation_config"]["type"] for r in as_json["gx_results"]["structure"]["results"]}
    assert {
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_unique",
    } <= checked
    assert as_json["computed_checks"][0]["source"] == "trainyard-pandas"


def test_valid_partitioned_digits_dataset_passes(tmp_path):
    report = validate_dataset_dir(make_digits(tmp_path), DIGITS)
    assert report.success, report.summary()
    assert report.row_count == 120


# --- unreadable datasets --------------------------------------------------------------------


def test_missing_dataset_dir_is_named(tmp_path):
    missing = tmp_path / "nope"
    message = failure_message(missing, "intent")
    assert f"dataset directory {missing} does not exist" in message
    with pytest.raises(DatasetReadError, match="does not exist"):
        read_examples(missing, INTENT)


def test_empty_dataset_dir_is_named(tmp_path):
    (tmp_path / "dt=2026-01-05").mkdir()
    assert f"dataset directory {tmp_path} is empty" in failure_message(tmp_path, "intent")


def test_missing_labels_file_is_named(tmp_path):
    make_intent(tmp_path)
    (tmp_path / "labels.csv").unlink()
    assert "labels.csv: missing" in failure_message(tmp_path, "intent")


def test_missing_examples_file_is_named(tmp_path):
    make_intent(tmp_path)
    (tmp_path / "examples.csv").unlink()
    assert "no examples.csv found" in failure_message(tmp_path, "intent")


def test_malformed_csv_names_file_and_line(tmp_path):
    make_digits(tmp_path)
    path = tmp_path / "dt=2026-01-12" / "examples.csv"
    lines = path.read_text().splitlines()
    lines[4] += ",99"  # line 5 gets one field too many
    path.write_text("\n".join(lines) + "\n")
    message = failure_message(tmp_path, "digits")
    assert "dt=2026-01-12/examples.csv: malformed CSV: line 5 has 67 fields, expected 66" in message


def test_unterminated_quote_is_malformed_csv(tmp_path):
    make_intent(tmp_path)
    with open(tmp_path / "examples.csv", "a", encoding="utf-8") as fh:
        fh.write('i9999,"never closed,1\n')
    message = failure_message(tmp_path, "intent")
    assert "examples.csv: malformed CSV: unterminated quoted field starting at line 62" in message


def test_zero_byte_examples_file_is_named(tmp_path):
    make_intent(tmp_path)
    (tmp_path / "examples.csv").write_bytes(b"")
    assert "examples.csv: file is empty (no header row)" in failure_message(tmp_path, "intent")


def test_labels_file_with_non_integer_id_is_named(tmp_path):
    make_intent(tmp_path)
    (tmp_path / "labels.csv").write_text("id,name\n0,book_flight\nx,cancel\n")
    with pytest.raises(DatasetReadError, match=r"labels.csv: line 3: label id 'x' is not an integer"):
        read_labels(tmp_path, INTENT)


def test_missing_column_is_named(tmp_path):
    make_intent(tmp_path)
    write_csv(tmp_path / "examples.csv", ["id", "label"], intent_rows())
    message = failure_message(tmp_path, "intent")
    assert "examples.csv: missing column text (has: id, label)" in message


def test_missing_column_in_a_frame_is_reported_once_by_the_suite():
    import pandas as pd

    frame = pd.DataFrame(intent_rows()).drop(columns=["text"])
    report = validate_examples(frame, dict(enumerate(INTENT_LABELS)), INTENT)
    assert report.failures == [
        "expect_table_columns_to_match_set: missing text",
        "3 checks on missing columns could not run",
    ]


def test_extra_column_is_reported(tmp_path):
    make_intent(tmp_path)
    rows = [dict(r, source="crawl") for r in intent_rows()]
    write_csv(tmp_path / "examples.csv", ["id", "text", "label", "source"], rows)
    message = failure_message(tmp_path, "intent")
    assert "expect_table_columns_to_match_set: unexpected source" in message


# --- rules of the suite ---------------------------------------------------------------------


def test_text_in_a_pixel_column_is_a_type_failure(tmp_path):
    def edit(rows):
        rows[3]["p5"] = "abc"
        rows[70]["p5"] = "1.5"

    message = failure_message(make_digits(tmp_path, edit), "digits")
    assert "expect_column_values_to_match_regex(p5): 2 unexpected of 120, e.g. '1.5', 'abc'" in message
    assert "to_be_between(p5)" not in message  # a bad cell is reported once, as a type failure


def test_pixel_out_of_range_is_named(tmp_path):
    def edit(rows):
        rows[10]["p63"] = "17"

    message = failure_message(make_digits(tmp_path, edit), "digits")
    assert "expect_column_values_to_be_between(p63): 1 unexpected of 120, e.g. 17 (allowed 0..16)" in message


def test_non_integer_label_is_a_type_failure(tmp_path):
    def edit(rows):
        rows[0]["label"] = "two"

    message = failure_message(make_intent(tmp_path, edit), "intent")
    assert "expect_column_values_to_match_regex(label): 1 unexpected of 60, e.g. 'two'" in message


def test_nulls_are_counted_per_column(tmp_path):
    def edit(rows):
        for row in rows[:3]:
            row["text"] = ""
        rows[7]["label"] = ""

    message = failure_message(make_intent(tmp_path, edit), "intent")
    assert "expect_column_values_to_not_be_null(text): 3 unexpected of 60" in message
    assert "expect_column_values_to_not_be_null(label): 1 unexpected of 60" in message


def test_whitespace_only_text_is_refused_like_empty_text(tmp_path):
    def edit(rows):
        rows[0]["text"] = "   "
        rows[1]["text"] = "\t "
        rows[2]["id"] = "  "

    message = failure_message(make_intent(tmp_path, edit), "intent")
    assert "expect_column_values_to_not_match_regex(text): 2 unexpected of 60" in message
    assert "expect_column_values_to_not_match_regex(id): 1 unexpected of 60" in message
    assert "(blank: only whitespace)" in message


def test_text_that_spells_na_is_not_a_null(tmp_path):
    def edit(rows):
        rows[0]["text"] = "NA"
        rows[1]["text"] = "null"

    assert validate_dataset_dir(make_intent(tmp_path, edit), "intent").success


def test_label_outside_the_label_set_is_named(tmp_path):
    def edit(rows):
        rows[5]["label"] = "9"
        rows[6]["label"] = "-1"

    message = failure_message(make_intent(tmp_path, edit), "intent")
    assert "expect_column_values_to_be_in_set(label): 2 unexpected of 60, e.g. -1, 9" in message
    assert "(labels.csv declares 0, 1, 2, 3, 4, 5)" in message


def test_too_few_rows_is_named(tmp_path):
    message = failure_message(make_intent(tmp_path, count=30), "intent")
    assert "expect_table_row_count_to_be_between(50..1000000): observed 30 rows" in message


def test_duplicate_ids_are_named(tmp_path):
    def edit(rows):
        rows[9]["id"] = rows[8]["id"]

    message = failure_message(make_intent(tmp_path, edit), "intent")
    assert "expect_column_values_to_be_unique(id): 2 unexpected of 60, e.g. 'i0008'" in message


def test_duplicate_id_across_partitions_is_caught(tmp_path):
    write_labels(tmp_path, INTENT_LABELS)
    rows = intent_rows(60)
    write_csv(tmp_path / "dt=2026-01-05" / "examples.csv", ["id", "text", "label"], rows[:30])
    rows[45]["id"] = rows[0]["id"]  # the later partition reuses an id of the earlier one
    write_csv(tmp_path / "dt=2026-01-12" / "examples.csv", ["id", "text", "label"], rows[30:])
    message = failure_message(tmp_path, "intent")
    assert "expect_column_values_to_be_unique(id): 2 unexpected of 60, e.g. 'i0000'" in message


def test_class_below_min_share_is_named(tmp_path):
    def edit(rows):
        rows[:] = [r for r in rows if r["label"] != "5"] + [dict(rows[5], id="rare")]

    # 101 rows: set_alarm (5) holds 1 = 0.99% < 2%
    message = failure_message(make_intent(tmp_path, edit, count=120), "intent")
    assert (
        "min_class_share(label) [pandas check, not GX]: 1 of 6 classes below 2.0% of 101 rows: "
        "5 (set_alarm) 1.0%" in message
    )


def test_declared_class_with_no_examples_is_below_min_share(tmp_path):
    def edit(rows):
        for row in rows:
            if row["label"] == "4":
                row["label"] = "0"

    message = failure_message(make_intent(tmp_path, edit), "intent")
    assert "4 (play_music) 0.0%" in message


def test_failures_are_listed_most_basic_first(tmp_path):
    def edit(rows):
        rows[0]["label"] = "7"  # outside the label set
        rows[1]["text"] = ""  # null

    report = validate_dataset_dir(make_intent(tmp_path, edit, count=40), "intent")
    assert [line.split(":")[0].split("(")[0] for line in report.failures] == [
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
    ]
    assert str(ValidationFailed(report)).splitlines()[0] == (
        f"dataset '{tmp_path.name}' failed validation against schema 'intent' (3 of 13 checks failed):"
    )


def test_failure_message_shows_at_most_ten_lines_and_the_report_keeps_all():
    failures = [f"expect_column_values_to_match_regex(p{i}): 1 unexpected of 120, e.g. 'x'" for i in range(20)]
    report = ValidationReport(
        dataset="digits", schema_name="digits", success=False, row_count=120,
        checks_evaluated=201, checks_failed=20, failures=failures, duration_s=0.0,
    )
    lines = str(ValidationFailed(report)).splitlines()
    assert len(lines) == 1 + 10 + 1
    assert lines[1] == "- " + failures[0]
    assert lines[-1] == "- ... and 10 more (see the full validation report)"
    assert ValidationReport.from_json_bytes(report.to_json_bytes()).failures == failures


# --- reading ----------------------------------------------------------------------------------


def test_partitions_are_concatenated_in_date_order(tmp_path):
    write_labels(tmp_path, INTENT_LABELS)
    rows = intent_rows(60)
    # written newest first, so directory order cannot be what sorts them
    write_csv(tmp_path / "dt=2026-02-01" / "examples.csv", ["id", "text", "label"], rows[40:])
    write_csv(tmp_path / "dt=2026-01-01" / "examples.csv", ["id", "text", "label"], rows[:20])
    write_csv(tmp_path / "dt=2026-01-15" / "examples.csv", ["id", "text", "label"], rows[20:40])
    frame, labels = read_examples(tmp_path, "intent")
    assert frame["id"].tolist() == [r["id"] for r in rows]
    assert labels == dict(enumerate(INTENT_LABELS))
    assert set(frame.dtypes.astype(str)) == {"object"}  # text only; types are the suite's job


def test_gx_stays_quiet_and_is_imported_only_when_validating(tmp_path):
    """Task logs run at INFO; GX would otherwise add hundreds of lines per task."""
    make_intent(tmp_path)
    script = f"""
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
import steps.data.validate as v
assert "great_expectations" not in sys.modules, "GX imported at module import"
report = v.validate_dataset_dir({str(tmp_path)!r}, "intent")
assert report.success
assert logging.getLogger().level == logging.INFO
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
    assert "great_expectations" not in done.stderr
    assert "Calculating Metrics" not in done.stderr  # no tqdm progress bars in task logs
