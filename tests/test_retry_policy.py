"""How many tries the train task gets, and which failures it spends them on (operators/retry_policy.py):
the largest `retries` of the registry where the algorithm is a run-time Param, the algorithm's own
where a DAG trains one; at run time, a failure the algorithm's count does not cover, or one that
cannot succeed on another try, ends the task for good."""
from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from operators.retry_policy import retrying_only_what_can_succeed
from steps.executors.base import TrainerFailed
from tests.conftest import PROJECT_ROOT
from trainyard.local_airflow import load_dag


@pytest.fixture
def registry_with_retries(tmp_path, monkeypatch):
    registry = yaml.safe_load((PROJECT_ROOT / "config" / "algorithms.yaml").read_text())
    registry["digits-cnn"]["retries"] = 1
    registry["intent-classification"]["retries"] = 4
    path = tmp_path / "algorithms.yaml"
    path.write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("TRAINYARD_ALGORITHMS_CATALOG", str(path))
    monkeypatch.setenv("TRAINYARD_RETRY_DELAY_S", "7")


def test_the_train_task_gets_the_registrys_retries_when_the_dag_is_parsed(registry_with_retries):
    pipeline = load_dag("training_pipeline").get_task("train")
    assert pipeline.retries == 4  # either algorithm may run: room for the one that allows most
    assert pipeline.retry_delay == timedelta(seconds=7)
    assert load_dag("scheduled_retraining").get_task("train").retries == 1  # digits-cnn only
    assert load_dag("scheduled_retraining_intents").get_task("train").retries == 4


class _Ti:
    def __init__(self, try_number):
        self.try_number = try_number


def _fail_on_try(try_number: int, error: Exception, retries: int = 1) -> BaseException:
    # The Airflow context as a task sees it, reduced to what the policy reads: the try number.
    with pytest.raises(BaseException) as raised, retrying_only_what_can_succeed(retries, {"ti": _Ti(try_number)}):
        raise error
    return raised.value


def test_a_retryable_failure_is_retried_until_the_algorithms_own_count_is_spent():
    killed = TrainerFailed("trainer 'digits-cnn' exited with code -9")
    assert _fail_on_try(1, killed) is killed  # Airflow retries what it is given back
    final = _fail_on_try(2, killed)
    assert isinstance(final, AirflowFailException)
    assert str(final) == (
        "trainer 'digits-cnn' exited with code -9 (not retried: try 2 was the last; the algorithm allows 1 retries)"
    )


def test_a_failure_that_would_repeat_is_never_retried():
    diverged = TrainerFailed("trainer 'digits-cnn' diverged: training loss is nan at epoch 1, batch 3 of 9",
                             failure_kind="diverged")
    final = _fail_on_try(1, diverged, retries=5)
    assert isinstance(final, AirflowFailException)
    assert str(final).endswith("(not retried: a diverged failure would repeat)")
