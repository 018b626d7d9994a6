"""Record why a task failed (steps/lifecycle/run_failure.py) beside the run, then let Airflow see
the exception as before. Every pipeline task runs its step inside `recording_failure`."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


def _run_key_and_try(context: Any) -> tuple[str, int | None]:
    from airflow.sdk import get_current_context

    from steps.lifecycle.plan import run_key_for

    current = context if context is not None else get_current_context()
    ti = current.get("ti")
    return run_key_for(current["dag"].dag_id, current["run_id"]), getattr(ti, "try_number", None)


def _is_skip(exc: Exception) -> bool:
    from airflow.sdk.exceptions import AirflowSkipException

    return isinstance(exc, AirflowSkipException)


@contextmanager
def recording_failure(step: str, context: Any = None) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if _is_skip(exc):  # a skipped step did not fail
            raise
        from operators.context import load_settings, open_artifact_store
        from steps.lifecycle.run_failure import failure_from_exception, record_failure

        try:
            run_key, try_number = _run_key_and_try(context)
            failure = failure_from_exception(run_key, step, exc, try_number=try_number)
            record_failure(open_artifact_store(load_settings()), failure)
            log.error("%s", failure.summary)
        except Exception as unrecorded:  # noqa: BLE001 - the task's own error is the one to raise
            log.warning("could not record why %s failed: %s", step, unrecorded)
        raise


def records_failure(step: str):
    """Decorator form for @task functions (put it under @task)."""
    import functools

    def decorate(function):
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with recording_failure(step):
                return function(*args, **kwargs)

        return run

    return decorate
