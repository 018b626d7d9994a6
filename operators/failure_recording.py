"""Record why a task failed (steps/lifecycle/run_failure.py) beside the run, then let Airflow see
the exception as before. Every pipeline task runs its step inside `recording_failure`."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


def _run_key_and_try(context: Any, run_key: str | None) -> tuple[str, int | None]:
    from airflow.sdk import get_current_context

    from steps.lifecycle.plan import run_key_for

    current = context if context is not None else get_current_context()
    ti = current.get("ti")
    return run_key or run_key_for(current["dag"].dag_id, current["run_id"]), getattr(ti, "try_number", None)


def _is_skip(exc: Exception) -> bool:
    from airflow.sdk.exceptions import AirflowSkipException

    return isinstance(exc, AirflowSkipException)


@contextmanager
def recording_failure(step: str, context: Any = None, run_key: str | None = None) -> Iterator[None]:
    """`run_key` names the run the step belongs to when it is not the DAG run's own (a study's trial)."""
    try:
        yield
    except Exception as exc:
        if _is_skip(exc):  # a skipped step did not fail
            raise
        from operators.context import load_settings, open_artifact_store
        from steps.lifecycle.run_failure import failure_from_exception, record_failure

        try:
            run_key, try_number = _run_key_and_try(context, run_key)
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


def plan_run_key(plan: Any) -> str | None:
    """The run a train task's plan names (a study's trial is a run of its own, not the DAG run);
    None if the plan cannot be read, and the failure is then kept beside the DAG run."""
    from operators.xcom import xcom_record

    try:
        return str(xcom_record(plan)["run_key"])
    except (TypeError, KeyError, ValueError):
        return None
