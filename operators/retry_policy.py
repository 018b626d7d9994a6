"""How many tries the train task gets, and which failures it spends them on.

Airflow fixes a task's `retries` when the DAG is parsed, but training_pipeline picks its algorithm
at run time (a Param). So the train task is built with the largest `retries` of any registered
algorithm (a scheduled_retraining DAG, which has one algorithm, gets exactly that one's), and at run
time `retrying_only_what_can_succeed` ends the task for good (AirflowFailException) when

- the failure cannot succeed on another try (a diverged loss, a bad request, an integrity error, ...:
  steps/lifecycle/run_failure.py decides), or
- this try was the last one the run's own algorithm allows (`RunPlan.retries`, from the registry).

A retried trainer resumes from the newest intact checkpoint of its own run (docs/trainer-contract.md).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException


def train_retries(algorithm: str | None = None) -> int:
    """Parse time: the `retries` of `algorithm`, or the largest of any registered algorithm."""
    from steps.catalog.catalog import Catalog
    from trainyard.settings import Settings

    settings = Settings.load()
    algorithms = Catalog.load(settings.datasets_catalog, settings.algorithms_catalog).algorithms
    if algorithm is not None:
        return algorithms[algorithm].retries if algorithm in algorithms else 0
    return max((entry.retries for entry in algorithms.values()), default=0)


def train_retry_delay() -> timedelta:
    from trainyard.settings import Settings

    return timedelta(seconds=Settings.load().retry_delay_s)


def _try_number(context: Any) -> int | None:
    from airflow.sdk import get_current_context

    current = context if context is not None else get_current_context()
    return getattr(current.get("ti"), "try_number", None)


@contextmanager
def retrying_only_what_can_succeed(retries: int, context: Any = None) -> Iterator[None]:
    try:
        yield
    except (AirflowFailException, AirflowSkipException):  # already final: failed for good, or nothing to do
        raise
    except Exception as exc:
        from steps.lifecycle.run_failure import failure_kind, is_retryable, one_line

        reason = one_line(str(exc)) or type(exc).__name__
        if not is_retryable(exc):
            raise AirflowFailException(f"{reason} (not retried: a {failure_kind(exc)} failure would repeat)") from exc
        try_number = _try_number(context)
        if try_number is not None and try_number > retries:
            raise AirflowFailException(
                f"{reason} (not retried: try {try_number} was the last; the algorithm allows {retries} retries)"
            ) from exc
        raise
