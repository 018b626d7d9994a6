"""What the validate step reports: the typed report stored as a run artifact, the failure it
raises, and the one short, readable line per failed Great Expectations check."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from steps.hashing import canonical_json

#: How many failure lines a ValidationFailed message shows; the report holds them all.
MAX_MESSAGE_LINES = 10
_EXAMPLES_SHOWN = 3


class ComputedCheck(BaseModel):
    """A rule checked with pandas next to the GX suite, because GX 1.x has no built-in for it."""

    model_config = ConfigDict(frozen=True)

    name: str
    column: str
    success: bool
    detail: str
    observed: dict[str, float]  # label id -> share of all rows
    source: Literal["trainyard-pandas"] = "trainyard-pandas"


class ValidationReport(BaseModel):
    """Everything the validate step found; stored whole as a run artifact."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    schema_name: str
    success: bool
    row_count: int | None
    checks_evaluated: int
    checks_failed: int
    failures: list[str]  # short, readable, one per failed check, most basic first
    read_error: str | None = None  # set when the files could not be read at all
    gx_results: dict[str, Any] | None = None  # {"structure": ..., "values": ...} GX suite results
    computed_checks: list[ComputedCheck] = []
    gx_version: str | None = None
    duration_s: float

    def to_json_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_json_bytes(cls, data: bytes) -> ValidationReport:
        return cls.model_validate_json(data)

    def summary(self, max_lines: int = MAX_MESSAGE_LINES) -> str:
        if self.success:
            return f"dataset {self.dataset!r} passed schema {self.schema_name!r} ({self.checks_evaluated} checks)"
        if self.read_error is not None:
            head = f"dataset {self.dataset!r} could not be read as schema {self.schema_name!r}:"
        else:
            head = (
                f"dataset {self.dataset!r} failed validation against schema {self.schema_name!r} "
                f"({self.checks_failed} of {self.checks_evaluated} checks failed):"
            )
        lines = [head, *(f"- {line}" for line in self.failures[:max_lines])]
        if len(self.failures) > max_lines:
            lines.append(f"- ... and {len(self.failures) - max_lines} more (see the full validation report)")
        return "\n".join(lines)

    def raise_if_failed(self) -> ValidationReport:
        if not self.success:
            raise ValidationFailed(self)
        return self


class ValidationFailed(ValueError):
    """The dataset broke its schema's rules; the message is the short list of failures."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.summary())


def _example(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _label_set_text(value_set: list[Any]) -> str:
    ids = sorted(value_set)
    if len(ids) > 8 and ids == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}..{ids[-1]}"
    return ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")


def failure_line(result: dict[str, Any]) -> str:
    config = result["expectation_config"]
    kind = config["type"]
    kwargs = config.get("kwargs", {})
    column = kwargs.get("column")
    head = f"{kind}({column})" if column else kind
    info = result.get("exception_info") or {}
    errors = [info] if "raised_exception" in info else list(info.values())
    raised = [e for e in errors if isinstance(e, dict) and e.get("raised_exception")]
    if raised:
        return f"{head}: could not run: {raised[0].get('exception_message')}"
    outcome = result.get("result") or {}
    if kind == "expect_table_columns_to_match_set":
        mismatched = (outcome.get("details") or {}).get("mismatched") or {}
        parts = []
        if mismatched.get("missing"):
            parts.append("missing " + ", ".join(mismatched["missing"]))
        if mismatched.get("unexpected"):
            parts.append("unexpected " + ", ".join(map(str, mismatched["unexpected"])))
        return f"{head}: {'; '.join(parts) or 'columns differ'}"
    if kind == "expect_table_row_count_to_be_between":
        high = kwargs.get("max_value")
        bounds = f"{kwargs.get('min_value')}..{high if high is not None else ''}"
        return f"{head}({bounds}): observed {outcome.get('observed_value')} rows"
    if "unexpected_count" in outcome:
        line = f"{head}: {outcome['unexpected_count']} unexpected of {outcome.get('element_count')}"
        if kind != "expect_column_values_to_not_be_null":
            examples = [_example(c["value"]) for c in outcome.get("partial_unexpected_counts") or []]
            if examples:
                line += ", e.g. " + ", ".join(examples[:_EXAMPLES_SHOWN])
        if kind == "expect_column_values_to_be_in_set":
            line += f" (labels.csv declares {_label_set_text(kwargs.get('value_set') or [])})"
        elif kind == "expect_column_values_to_not_match_regex":
            line += " (blank: only whitespace)"
        elif kind == "expect_column_values_to_be_between":
            line += f" (allowed {kwargs.get('min_value'):g}..{kwargs.get('max_value'):g})"
        return line
    return f"{head}: observed {outcome.get('observed_value')}"
