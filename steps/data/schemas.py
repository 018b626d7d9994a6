"""Dataset schemas: what a valid dataset of each kind looks like, as typed records.

The reader uses a schema to know which files and columns to expect; the validate step
builds its Great Expectations suite from it. Frozen dataclasses rather than pydantic so
the trainers, which import this through the reader, need nothing beyond the stdlib.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class ColumnType(StrEnum):
    """The type a CSV cell must parse as. CSV has no types, so this is about the text."""

    INT = "int"
    STR = "str"


class UnknownSchema(LookupError):
    """A schema name that is not registered."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    # Inclusive value bounds, for INT columns only (e.g. pixel intensity 0..16).
    min_value: int | None = None
    max_value: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("column name must not be empty")
        if self.type is not ColumnType.INT and (self.min_value is not None or self.max_value is not None):
            raise ValueError(f"column {self.name}: value bounds only apply to int columns")
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValueError(f"column {self.name}: min_value {self.min_value} > max_value {self.max_value}")

    @property
    def has_bounds(self) -> bool:
        return self.min_value is not None or self.max_value is not None


#: labels.csv has the same layout for every schema: the label id the examples use, and
#: its human-readable name.
LABEL_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("id", ColumnType.INT),
    ColumnSpec("name", ColumnType.STR),
)


@dataclass(frozen=True)
class DatasetSchema:
    name: str
    example_columns: tuple[ColumnSpec, ...]
    id_column: str
    label_column: str
    min_rows: int
    max_rows: int | None
    # Every declared label must hold at least this fraction of all examples.
    min_class_share: float
    examples_file: str = "examples.csv"
    labels_file: str = "labels.csv"

    def __post_init__(self) -> None:
        names = [c.name for c in self.example_columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"schema {self.name}: duplicate columns {', '.join(duplicates)}")
        for role, column in (("id", self.id_column), ("label", self.label_column)):
            if column not in names:
                raise ValueError(f"schema {self.name}: {role} column {column!r} is not among its columns")
        if self.column(self.label_column).type is not ColumnType.INT:
            raise ValueError(f"schema {self.name}: label column {self.label_column!r} must be int (labels.csv ids)")
        if self.min_rows < 0:
            raise ValueError(f"schema {self.name}: min_rows must be >= 0, got {self.min_rows}")
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ValueError(f"schema {self.name}: max_rows {self.max_rows} < min_rows {self.min_rows}")
        if not 0.0 <= self.min_class_share < 1.0:
            raise ValueError(f"schema {self.name}: min_class_share must be in [0, 1), got {self.min_class_share}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.example_columns)

    def column(self, name: str) -> ColumnSpec:
        for spec in self.example_columns:
            if spec.name == name:
                return spec
        raise KeyError(f"schema {self.name} has no column {name!r}")


DIGITS_PIXEL_COUNT = 64  # 8x8 images, as in scikit-learn's bundled digits
DIGITS_PIXEL_MAX = 16  # intensities are 0..16 in that data

DIGITS = DatasetSchema(
    name="digits",
    example_columns=(
        ColumnSpec("id", ColumnType.STR),
        ColumnSpec("label", ColumnType.INT),
        *(
            ColumnSpec(f"p{i}", ColumnType.INT, min_value=0, max_value=DIGITS_PIXEL_MAX)
            for i in range(DIGITS_PIXEL_COUNT)
        ),
    ),
    id_column="id",
    label_column="label",
    min_rows=100,
    max_rows=1_000_000,
    min_class_share=0.02,
)

INTENT = DatasetSchema(
    name="intent",
    example_columns=(
        ColumnSpec("id", ColumnType.STR),
        ColumnSpec("text", ColumnType.STR),
        ColumnSpec("label", ColumnType.INT),
    ),
    id_column="id",
    label_column="label",
    min_rows=50,
    max_rows=1_000_000,
    min_class_share=0.02,
)

SCHEMAS: Mapping[str, DatasetSchema] = {schema.name: schema for schema in (DIGITS, INTENT)}


def get_schema(name: str) -> DatasetSchema:
    """The registered schema called `name`; an unknown name lists the registered ones."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise UnknownSchema(
            f"dataset schema {name!r} is not registered; registered: {', '.join(sorted(SCHEMAS))}"
        ) from None


def resolve_schema(schema: DatasetSchema | str) -> DatasetSchema:
    """Accept a schema record or its registered name, so callers can pass a DAG param as is."""
    return schema if isinstance(schema, DatasetSchema) else get_schema(schema)
