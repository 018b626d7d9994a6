"""The train step's operator, chosen when the DAG is parsed: Airflow pools and operator
types are static, so TRAINYARD_EXECUTOR (or [executor] kind) decides it here, and so are its
retries (operators/retry_policy.py says how a per-algorithm count is honoured).

On Kubernetes a run's shape is only known once it is planned: a one-node run is one pod
(TrainerPodOperator, torchrun inside for procs_per_node > 1), a multi-node run an Indexed Job
(TrainerJobOperator). A branch picks one and `train_result` hands on whichever result there is.
"""
from __future__ import annotations

from airflow.sdk import task

from operators.retry_policy import train_retries, train_retry_delay
from operators.xcom import XComRecord
from steps.catalog.teams import TeamEntry
from trainyard.settings import Settings


def train_step(plan, snapshot, validation, *, algorithm: str | None = None):
    """`algorithm`: the one algorithm a DAG trains, when it is fixed (scheduled_retraining)."""
    retries, retry_delay = train_retries(algorithm), train_retry_delay()
    if Settings.load().executor == "kubernetes":
        return kubernetes_train_step(plan, snapshot, validation, retries=retries, retry_delay=retry_delay)
    from operators.train_operator import TrainOperator

    return TrainOperator(
        plan=plan, snapshot=snapshot, validation=validation, retries=retries, retry_delay=retry_delay
    ).output


@task.branch(task_id="train_on")
def train_on(plan: XComRecord) -> str:
    from steps.lifecycle.plan import RunPlan

    return "train_nodes" if RunPlan.model_validate(plan).nodes > 1 else "train"


@task(task_id="train_result", multiple_outputs=False, trigger_rule="none_failed_min_one_success")
def train_result(one_pod: XComRecord, indexed_job: XComRecord) -> dict:
    """The TrainerResult of whichever train task ran (the other was skipped, so its XCom is None)."""
    return one_pod or indexed_job


def kubernetes_train_step(plan, snapshot, validation, *, retries: int, retry_delay):
    from operators.train_job import TrainerJobOperator
    from operators.train_pod import TrainerPodOperator

    one_pod = TrainerPodOperator(plan=plan, snapshot=snapshot, validation=validation, retries=retries, retry_delay=retry_delay)
    indexed_job = TrainerJobOperator(
        plan=plan, snapshot=snapshot, validation=validation, retries=retries, retry_delay=retry_delay
    )
    train_on(plan) >> [one_pod, indexed_job]
    return train_result(one_pod.output, indexed_job.output)


def trial_train_step(team: TeamEntry, wave: int, snapshot, validation, trials):
    """A study wave's trials: the same train step, mapped over the wave's RunPlans (one per trial), in the
    team's pool. The pool is part of the task, so it is set here, when the DAG is parsed. A trial gets no
    Airflow retries: the study records a failed trial and goes on, and a retry would hold up its wave."""
    task_id = f"train_wave_{wave}"
    if Settings.load().executor == "kubernetes":
        from operators.train_pod import TrainerPodOperator

        return TrainerPodOperator.partial(
            task_id=task_id, snapshot=snapshot, validation=validation, team=team.name, pool=team.pool
        ).expand(plan=trials)
    from operators.train_operator import TrainOperator

    return TrainOperator.partial(task_id=task_id, snapshot=snapshot, validation=validation, pool=team.pool).expand(
        plan=trials
    )
