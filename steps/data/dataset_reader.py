"""Read a dataset directory (labels.csv + examples.csv, possibly in dt= partitions) into pandas.

Used by the validate step and by the trainers inside their containers, so it imports only
pandas and the stdlib: no Airflow, no Great Expectations. Every cell is read as text;
deciding whether "abc" is a valid pixel is the validation suite's job, not the parser's,
so that a bad cell shows up as a named, counted failure instead of a parser crash.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from steps.data.schemas import LABEL_COLUMNS, DatasetSchema, resolve_schema

INT_PATTERN = r"-?[0-9]+"  # what an int cell must look like; shared with the GX suite
_INT_RE = re.compile(rf"^{INT_PATTERN}$")
_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_EOF_IN_STRING_RE = re.compile(r"EOF inside string starting at row (\d+)")


class DatasetReadError(ValueError):
    """The dataset's files cannot be read as the schema says; the message names the file."""


def find_example_files(dataset_dir: Path, schema: DatasetSchema) -> list[Path]:
    """Every examples file: one at the top level and/or one per dt=YYYY-MM-DD partition.

    Sorted by relative path (top-level file first), so partitions concatenate in date order
    and the row order never depends on the filesystem.
    """
    found = [
        path
        for path in dataset_dir.rglob(schema.examples_file)
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(dataset_dir).parts)
    ]
    return sorted(found, key=lambda p: (len(p.relative_to(dataset_dir).parts), p.relative_to(dataset_dir).as_posix()))


def _describe(path: Path, dataset_dir: Path) -> str:
    try:
        return f"{dataset_dir.name}/{path.relative_to(dataset_dir).as_posix()}"
    except ValueError:
        return str(path)


def _read_csv_text(path: Path, shown: str) -> pd.DataFrame:
    """Every cell as str (object dtype); only an empty cell is null.

    keep_default_na=False because pandas would otherwise turn texts like "NA", "null" or
    "None" (real utterances in an intent dataset) into nulls.
    """
    try:
        return pd.read_csv(
            path,
            dtype=object,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8",
            skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        raise DatasetReadError(f"{shown}: file is empty (no header row)") from None
    except pd.errors.ParserError as err:
        raise DatasetReadError(f"{shown}: malformed CSV: {_parser_message(err)}") from None
    except UnicodeDecodeError as err:
        raise DatasetReadError(f"{shown}: not valid UTF-8 (bad byte at offset {err.start})") from None
    except OSError as err:
        raise DatasetReadError(f"{shown}: cannot read: {err.strerror or err}") from None


def _parser_message(err: Exception) -> str:
    text = str(err).strip()
    # pandas counts records, 1-based with the header as 1: the file line unless a quoted
    # field spans lines.
    if match := _FIELDS_RE.search(text):
        expected, line, saw = match.groups()
        return f"line {line} has {saw} fields, expected {expected}"
    if match := _EOF_IN_STRING_RE.search(text):
        return f"unterminated quoted field starting at line {int(match.group(1)) + 1}"
    return text.removeprefix("Error tokenizing data. C error: ")


def _require_columns(frame: pd.DataFrame, required: tuple[str, ...], shown: str) -> None:
    present = set(frame.columns)
    missing = [name for name in required if name not in present]
    if missing:
        raise DatasetReadError(
            f"{shown}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(has: {', '.join(map(str, frame.columns)) or 'none'})"
        )


def read_labels(dataset_dir: Path, schema: DatasetSchema | str) -> dict[int, str]:
    """labels.csv as {label id: name}; ids must be unique ints and names non-empty."""
    schema = resolve_schema(schema)
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / schema.labels_file
    shown = _describe(path, dataset_dir)
    if not path.is_file():
        raise DatasetReadError(f"{shown}: missing; a dataset needs a {schema.labels_file} (id,name)")
    frame = _read_csv_text(path, shown)
    id_col, name_col = (c.name for c in LABEL_COLUMNS)
    _require_columns(frame, (id_col, name_col), shown)
    if frame.empty:
        raise DatasetReadError(f"{shown}: declares no labels")
    labels: dict[int, str] = {}
    for row_index, (raw_id, name) in enumerate(zip(frame[id_col], frame[name_col], strict=True)):
        line = row_index + 2  # 1-based, after the header
        if not isinstance(raw_id, str) or not _INT_RE.match(raw_id.strip()):
            raise DatasetReadError(f"{shown}: line {line}: label id {raw_id!r} is not an integer")
        if not isinstance(name, str) or not name.strip():
            raise DatasetReadError(f"{shown}: line {line}: label {raw_id} has no name")
        label_id = int(raw_id)
        if label_id in labels:
            raise DatasetReadError(f"{shown}: line {line}: label id {label_id} is declared twice")
        labels[label_id] = name
    return labels


def read_examples(dataset_dir: Path, schema: DatasetSchema | str) -> tuple[pd.DataFrame, dict[int, str]]:
    """All examples (every cell as text, partitions concatenated in order) and the label map.

    Raises DatasetReadError, naming the file, when the directory is missing or empty, a
    required file is missing, a CSV does not parse, or an examples file lacks a column.
    Extra columns are kept, so the validation suite can report them.
    """
    schema = resolve_schema(schema)
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.exists():
        raise DatasetReadError(f"dataset directory {dataset_dir} does not exist")
    if not dataset_dir.is_dir():
        raise DatasetReadError(f"dataset path {dataset_dir} is not a directory")
    if not any(p.is_file() for p in dataset_dir.rglob("*")):
        raise DatasetReadError(f"dataset directory {dataset_dir} is empty")

    labels = read_labels(dataset_dir, schema)
    files = find_example_files(dataset_dir, schema)
    if not files:
        raise DatasetReadError(
            f"{dataset_dir.name}: no {schema.examples_file} found "
            f"(expected {schema.examples_file} or dt=YYYY-MM-DD/{schema.examples_file})"
        )
    frames = []
    for path in files:
        shown = _describe(path, dataset_dir)
        frame = _read_csv_text(path, shown)
        _require_columns(frame, schema.column_names, shown)
        frames.append(frame)
    examples = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)
    return examples, labels


def parse_int_column(values: pd.Series) -> pd.Series:
    """Text cells -> nullable Int64; a cell that is not an int (by INT_PATTERN) becomes <NA>.

    Only what the suite's type check accepts is parsed, so "1.0" or " 5" is reported once,
    as a type failure, and never slips into a range or label-set check as a number.
    """
    text = values.astype(object)
    try:
        is_int = text.str.match(_INT_RE, na=False).astype(bool)
    except AttributeError:  # .str refuses a column with no strings at all
        is_int = pd.Series(False, index=text.index)
    numbers = pd.to_numeric(text.where(is_int), errors="coerce")
    if numbers.notna().any() and not (numbers.abs().max() < 2**63):
        return numbers  # beyond int64: keep floats; such values fail any sane range anyway
    return numbers.astype("Int64")
