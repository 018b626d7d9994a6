"""Reading a config/*.yaml catalog file: a missing file, bad YAML or a bad entry is one line naming
the file (and the entry) and the problem, never a traceback."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

T = TypeVar("T")


class CatalogError(ValueError):
    """A catalog file that cannot be used as it is; the message names the file and the problem."""


def read_catalog_file(path: Path, entries: str) -> dict[str, Any]:
    """The file's top-level mapping of name -> entry ('entries' names them in messages: "datasets")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CatalogError(f"{path}: cannot read the catalog file: {getattr(err, 'strerror', None) or err}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise CatalogError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', None) or err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: expected a mapping of {entries} by name, found {type(raw).__name__}")
    return raw


def build_entry(path: Path, kind: str, name: Any, build: Callable[[], T]) -> T:
    """Run `build()` for one entry; its validation errors become one line naming file, entry and field."""
    try:
        return build()
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or kind}: {e['msg']}" for e in err.errors()[:3]
        )
        raise CatalogError(f"{path}: {kind} {name!r}: {problems}") from None
    except (KeyError, TypeError) as err:
        what = f"missing {err.args[0]!r}" if isinstance(err, KeyError) else "must be a mapping of settings"
        raise CatalogError(f"{path}: {kind} {name!r}: {what}") from None
