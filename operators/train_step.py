"""The train step's operator, chosen when the DAG is parsed: Airflow pools and operator
types are static, so TRAINYARD_EXECUTOR (or [executor] kind) decides it here, and so are its
retries (operators/retry_policy.py says how a per-algorithm count is honoured)."""
from __future__ import annotations

from operators.retry_policy import train_retries, train_retry_delay
from steps.catalog.teams import TeamEntry
from trainyard.settings import Settings


def train_step(plan, snapshot, validation, *, algorithm: str | None = None):
    """`algorithm`: the one algorithm a DAG trains, when it is fixed (scheduled_retraining)."""
    retries, retry_delay = train_retries(algorithm), train_retry_delay()
    if Settings.load().executor == "kubernetes":
        from operators.train_pod import TrainerPodOperator

        return TrainerPodOperator(
            plan=plan, snapshot=snapshot, validation=validation, retries=retries, retry_delay=retry_delay
        ).output
    from operators.train_operator import TrainOperator

    return TrainOperator(
        plan=plan, snapshot=snapshot, validation=validation, retries=retries, retry_delay=retry_delay
    ).output


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
