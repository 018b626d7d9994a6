"""The `train` task on the subprocess and container executors: a thin operator around
pipeline_tasks.train. An operator rather than a @task function for one method, `on_kill`: the
trainer runs in its own session, so when Airflow kills the task (a cancelled run, a run marked
failed, a timeout, a worker shutdown) nothing else would stop the trainer."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from operators.failure_recording import plan_run_key, recording_failure
from operators.retry_policy import retrying_only_what_can_succeed
from operators.xcom import xcom_record


class TrainOperator(BaseOperator):
    template_fields: Sequence[str] = ("plan", "snapshot", "validation")

    def __init__(self, *, plan: Any, snapshot: Any, validation: Any = None, task_id: str = "train", **kwargs: Any) -> None:
        super().__init__(task_id=task_id, **kwargs)
        self.plan = plan
        self.snapshot = snapshot
        self.validation = validation  # only orders train after validate

    def execute(self, context: Any) -> dict:
        from operators.pipeline_tasks import train
        from operators.training_reuse import skip_if_already_trained
        from steps.lifecycle.plan import RunPlan

        plan, snapshot = xcom_record(self.plan), xcom_record(self.snapshot)
        # The run's own algorithm decides how many of the task's tries it may use (operators/retry_policy.py).
        with (
            retrying_only_what_can_succeed(RunPlan.model_validate(plan).retries, context),
            recording_failure(self.task_id, context, plan_run_key(plan)),
        ):
            skip_if_already_trained(plan, snapshot, context)  # a registered identity: nothing to train
            return train(plan, snapshot)

    def on_kill(self) -> None:
        from steps.executors.trainer_process import stop_running_trainers

        self.log.warning("task killed: stopped %d running trainer(s)", stop_running_trainers())
