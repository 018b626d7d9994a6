"""training_pipeline: snapshot -> validate -> train -> evaluate -> register, on manual trigger."""
from __future__ import annotations

from airflow.sdk import dag

from operators.params import training_params
from operators.pipeline_tasks import (
    evaluate_task,
    plan_task,
    register_task,
    snapshot_task,
    validate_task,
)
from operators.train_step import train_step


@dag(
    dag_id="training_pipeline",
    schedule=None,
    catchup=False,
    params=training_params(),
    tags=["trainyard"],
    doc_md=__doc__,
)
def training_pipeline():
    plan = plan_task()
    snapshot = snapshot_task(plan)
    validation = validate_task(plan, snapshot)
    result = train_step(plan, snapshot, validation)
    evaluation = evaluate_task(plan, result)
    register_task(plan, snapshot, validation, result, evaluation)


training_pipeline_dag = training_pipeline()
