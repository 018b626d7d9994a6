"""What a task function's XCom parameters are typed as.

At run time a task receives a typed record's JSON (a dict) and parses it with the record's model;
while a DAG file is wired, the same parameter receives an XComArg. One alias says both.
"""
from __future__ import annotations

import json
from typing import Any, TypeAlias

#: A typed record's JSON at run time; an XComArg while the DAG is being wired.
XComRecord: TypeAlias = Any


def xcom_record(value: Any) -> Any:
    """An operator's templated XCom field: a dict (XComArg) or JSON text (a Jinja template)."""
    return json.loads(value) if isinstance(value, str) else value
