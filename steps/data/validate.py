"""The validate step: check a dataset against its schema with Great Expectations 1.x.

Two GX batches per dataset. The "structure" batch is the text exactly as read from the
CSV files (columns, row count, nulls, types, unique ids); the "values" batch holds the
int columns parsed to numbers (labels in the declared set, value ranges). Checking
types on the text and values on the numbers reports every bad cell exactly once, under
the rule it breaks. The one rule GX has no built-in expectation for (minimum class
share) is computed with pandas and labelled as such in the report.

GX is imported lazily (it takes seconds and logs hundreds of lines on import), so
importing this module stays cheap for DAG parsing and for the CLI.
"""
from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from steps.data.dataset_reader import INT_PATTERN, DatasetReadError, parse_int_column, read_examples
from steps.data.schemas import ColumnType, DatasetSchema, resolve_schema
from steps.data.validation_report import ComputedCheck, ValidationReport, failure_line

#: GX result detail kept in the report for a check that failed: counts plus up to 20 example
#: values, never the full list of unexpected rows (a million-row dataset would copy itself).
RESULT_FORMAT = "SUMMARY"
#: Every check runs first for pass/fail only: counting and listing unexpected values is most of
#: GX's work and nobody reads it for a check that passed. Only failed checks run again, in detail.
FIRST_PASS_FORMAT = "BOOLEAN_ONLY"
INT_REGEX = f"^{INT_PATTERN}$"
BLANK_REGEX = r"^\s+$"
LABEL_IDS_PARAM = "label_ids"


# --- Great Expectations runtime (lazy, one per process) --------------------------------


@dataclass(frozen=True)
class _GxRuntime:
    gx: Any  # the great_expectations module
    batch_definition: Any
    version: str


def _quiet_gx_logging() -> None:
    # GX logs hundreds of INFO/DEBUG lines while importing; raising only its own logger's
    # level leaves Airflow's and everyone else's logging exactly as configured.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


@functools.lru_cache(maxsize=1)
def _gx_runtime() -> _GxRuntime:
    _quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # In-memory, no progress bars (tqdm would write to task logs), no analytics.
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("trainyard").add_dataframe_asset("examples")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    return _GxRuntime(gx=gx, batch_definition=batch_definition, version=gx.__version__)


@dataclass(frozen=True)
class _Suites:
    structure: Any
    values: Any
    # (expectation type, column) -> position in the suites, to list failures in a stable,
    # most-basic-first order whatever order GX returns them in.
    order: dict[tuple[str, str | None], int]
    # (expectation type, column) -> the expectation: unique within a suite, and what a result names.
    by_key: dict[tuple[str, str | None], Any]


@functools.cache
def _suites_for(schema: DatasetSchema) -> _Suites:
    gx = _gx_runtime().gx
    E = gx.expectations
    structure = gx.ExpectationSuite(name=f"{schema.name}.structure")
    structure.add_expectation(E.ExpectTableColumnsToMatchSet(column_set=list(schema.column_names), exact_match=True))
    structure.add_expectation(
        E.ExpectTableRowCountToBeBetween(min_value=schema.min_rows, max_value=schema.max_rows)
    )
    for spec in schema.example_columns:
        structure.add_expectation(E.ExpectColumnValuesToNotBeNull(column=spec.name))
    for spec in schema.example_columns:
        # Every cell is text after reading a CSV, so a dtype check would pass trivially on
        # int columns: the regex is what proves a cell is an int. For text columns the
        # per-value type check still catches frames built in memory with non-str values.
        if spec.type is ColumnType.INT:
            structure.add_expectation(E.ExpectColumnValuesToMatchRegex(column=spec.name, regex=INT_REGEX))
        else:
            structure.add_expectation(E.ExpectColumnValuesToBeOfType(column=spec.name, type_="str"))
            # An empty cell is null (refused above); whitespace alone says no more than empty.
            structure.add_expectation(E.ExpectColumnValuesToNotMatchRegex(column=spec.name, regex=BLANK_REGEX))
    structure.add_expectation(E.ExpectColumnValuesToBeUnique(column=schema.id_column))

    values = gx.ExpectationSuite(name=f"{schema.name}.values")
    values.add_expectation(
        E.ExpectColumnValuesToBeInSet(column=schema.label_column, value_set={"$PARAMETER": LABEL_IDS_PARAM})
    )
    for spec in schema.example_columns:
        if spec.has_bounds:
            values.add_expectation(
                E.ExpectColumnValuesToBeBetween(column=spec.name, min_value=spec.min_value, max_value=spec.max_value)
            )

    order: dict[tuple[str, str | None], int] = {}
    by_key: dict[tuple[str, str | None], Any] = {}
    for expectation in [*structure.expectations, *values.expectations]:
        config = expectation.configuration
        key = (config.type, config.kwargs.get("column"))
        order.setdefault(key, len(order))
        by_key[key] = expectation
    return _Suites(structure=structure, values=values, order=order, by_key=by_key)


def warm_up() -> None:
    """Import GX and build every registered schema's suites now (a warm validation interpreter's
    preload, steps/data/validation_process.py), so a validation spends its time validating."""
    from steps.data.schemas import SCHEMAS

    for schema in SCHEMAS.values():
        _suites_for(schema)


# --- Frames for the two batches ---------------------------------------------------------


def _structure_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The text view. Columns from read_examples are already text; a frame built in memory
    (ints, floats) is turned into text the way it would have been written to a CSV."""
    converted = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object:
            converted[name] = column.astype(object).where(column.notna(), None).map(
                lambda cell: cell if cell is None else str(cell)
            )
    return frame.assign(**converted) if converted else frame


def _values_frame(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """Int columns parsed; cells that are not ints become <NA> (already a type failure).
    A column missing from the data is all <NA> here: the structure suite reports it."""
    columns = {}
    for spec in schema.example_columns:
        if spec.type is not ColumnType.INT:
            continue
        if spec.name in frame.columns:
            columns[spec.name] = parse_int_column(frame[spec.name])
        else:
            columns[spec.name] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    return pd.DataFrame(columns, index=frame.index)


def _validate_batch(
    runtime: _GxRuntime, frame: pd.DataFrame, suite: Any, suites: _Suites, parameters: dict | None
) -> dict[str, Any]:
    """The suite's results on `frame`: pass/fail for every check, full detail for those that failed."""
    batch = runtime.batch_definition.get_batch(batch_parameters={"dataframe": frame})
    results = batch.validate(suite, result_format=FIRST_PASS_FORMAT, expectation_parameters=parameters).to_json_dict()
    for index, result in enumerate(results["results"]):
        if not result["success"]:
            config = result["expectation_config"]
            expectation = suites.by_key[(config["type"], config.get("kwargs", {}).get("column"))]
            detailed = batch.validate(expectation, result_format=RESULT_FORMAT, expectation_parameters=parameters)
            results["results"][index] = detailed.to_json_dict()
    return results


# --- The rule GX has no expectation for ---------------------------------------------------


def _class_share_check(values: pd.DataFrame, labels: dict[int, str], schema: DatasetSchema) -> ComputedCheck | None:
    total = len(values)
    if total == 0:
        return None  # the row-count expectation already fails; shares of nothing mean nothing
    counts = values[schema.label_column].value_counts(dropna=True)
    shares = {label_id: float(counts.get(label_id, 0)) / total for label_id in sorted(labels)}
    below = [label_id for label_id, share in shares.items() if share < schema.min_class_share]
    limit = f"{schema.min_class_share:.1%}"
    if below:
        shown = ", ".join(f"{i} ({labels[i]}) {shares[i]:.1%}" for i in below[:5])
        more = f" and {len(below) - 5} more" if len(below) > 5 else ""
        detail = f"{len(below)} of {len(labels)} classes below {limit} of {total} rows: {shown}{more}"
    else:
        detail = f"all {len(labels)} classes hold at least {limit} of {total} rows"
    return ComputedCheck(
        name="min_class_share",
        column=schema.label_column,
        success=not below,
        detail=detail,
        observed={str(i): round(share, 6) for i, share in shares.items()},
    )


# --- Short failure lines -----------------------------------------------------------------


def _ordered_failures(results: list[dict[str, Any]], suites: _Suites, missing_columns: set[str]) -> list[str]:
    failed = []
    skipped = 0
    for result in results:
        if result.get("success"):
            continue
        config = result["expectation_config"]
        column = config.get("kwargs", {}).get("column")
        if column in missing_columns:
            skipped += 1  # the "missing column" line says it; one error per check would only repeat it
            continue
        key = suites.order.get((config["type"], column), len(suites.order))
        failed.append((key, failure_line(result)))
    lines = [line for _, line in sorted(failed, key=lambda pair: pair[0])]
    if skipped:
        lines.append(f"{skipped} checks on missing columns could not run")
    return lines


# --- The step ----------------------------------------------------------------------------


def validate_examples(
    frame: pd.DataFrame,
    labels: dict[int, str],
    schema: DatasetSchema | str,
    *,
    dataset: str = "<frame>",
) -> ValidationReport:
    """Run the schema's suite on examples as read by read_examples (text cells) and the
    label map from labels.csv. Never raises for bad data: call raise_if_failed()."""
    schema = resolve_schema(schema)
    started = time.perf_counter()
    runtime = _gx_runtime()
    suites = _suites_for(schema)
    missing_columns = set(schema.column_names) - set(frame.columns)

    values_frame = _values_frame(frame, schema)
    gx_results = {
        "structure": _validate_batch(runtime, _structure_frame(frame), suites.structure, suites, None),
        "values": _validate_batch(runtime, values_frame, suites.values, suites, {LABEL_IDS_PARAM: sorted(labels)}),
    }
    share_check = _class_share_check(values_frame, labels, schema) if schema.label_column in frame.columns else None
    computed = [share_check] if share_check is not None else []

    failures = _ordered_failures(
        [*gx_results["structure"]["results"], *gx_results["values"]["results"]], suites, missing_columns
    )
    failures += [
        f"{check.name}({check.column}) [pandas check, not GX]: {check.detail}" for check in computed if not check.success
    ]
    evaluated = len(gx_results["structure"]["results"]) + len(gx_results["values"]["results"]) + len(computed)
    failed = (
        sum(not r["success"] for r in gx_results["structure"]["results"])
        + sum(not r["success"] for r in gx_results["values"]["results"])
        + sum(not c.success for c in computed)
    )
    return ValidationReport(
        dataset=dataset,
        schema_name=schema.name,
        success=failed == 0,
        row_count=len(frame),
        checks_evaluated=evaluated,
        checks_failed=failed,
        failures=failures,
        gx_results=_json_safe(gx_results),
        computed_checks=computed,
        gx_version=runtime.version,
        duration_s=round(time.perf_counter() - started, 3),
    )


def validate_dataset_dir(
    dataset_dir: Path, schema: DatasetSchema | str, *, dataset: str | None = None
) -> ValidationReport:
    """Read a dataset directory and validate it. A dataset that cannot be read at all
    (missing, empty, malformed CSV, missing file or column) gives a failed report too, so
    the step always has a report to store before it fails the task."""
    schema = resolve_schema(schema)  # an unknown schema is a caller error: raise, don't report
    dataset_dir = Path(dataset_dir)
    dataset = dataset or dataset_dir.name
    started = time.perf_counter()
    try:
        frame, labels = read_examples(dataset_dir, schema)
    except DatasetReadError as err:
        return ValidationReport(
            dataset=dataset,
            schema_name=schema.name,
            success=False,
            row_count=None,
            checks_evaluated=0,
            checks_failed=1,
            failures=[str(err)],
            read_error=str(err),
            duration_s=round(time.perf_counter() - started, 3),
        )
    report = validate_examples(frame, labels, schema, dataset=dataset)
    return report.model_copy(update={"duration_s": round(time.perf_counter() - started, 3)})


def _json_safe(value: Any) -> Any:
    """GX results can hold NaN/inf floats, which are not JSON; the artifact must be."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
