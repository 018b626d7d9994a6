"""Wiring for a model's scheduled_retraining DAG: the same five steps as training_pipeline."""
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param

from operators.params import force_param, shape_params
from operators.pipeline_tasks import evaluate_task, plan_task, register_task, snapshot_task, validate_task
from operators.train_step import train_step
from steps.catalog.retraining import RetrainingEntry, dataset_asset_uri
from steps.lifecycle.plan import BOUNDS


def retraining_params(entry: RetrainingEntry) -> dict[str, Param]:
    p = entry.params
    return {
        "dataset": Param(entry.dataset, type="string", enum=[entry.dataset], description="Dataset (fixed per model)."),
        "algorithm": Param(entry.algorithm, type="string", enum=[entry.algorithm], description="Algorithm (fixed per model)."),
        "model_name": Param(entry.model_name, type="string", enum=[entry.model_name], description="Registry name."),
        "epochs": Param(p["epochs"], type="integer", description="Passes over the training split.", **BOUNDS["epochs"]),
        "learning_rate": Param(p["learning_rate"], type="number", description="Adam step size.", **BOUNDS["learning_rate"]),
        "batch_size": Param(p["batch_size"], type="integer", description="Examples per step.", **BOUNDS["batch_size"]),
        "seed": Param(p["seed"], type="integer", description="Training seed.", **BOUNDS["seed"]),
        **shape_params(p.get("nodes"), p.get("procs_per_node")),
        "replay": Param(
            "exact", type="string", enum=["exact", "current-code"],
            description="Backfills of dates with a model: exact replay of its manifest, or its data on today's trainer.",
        ),
        "force": force_param(),
    }


def build_retraining_dag(entry: RetrainingEntry) -> DAG:
    dataset_asset = Asset(name=f"dataset-{entry.dataset}", uri=dataset_asset_uri(entry.dataset))
    with DAG(
        dag_id=entry.dag_id,
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(entry.cron, timezone="UTC"), assets=dataset_asset
        ),
        start_date=pendulum.datetime(entry.start_date.year, entry.start_date.month, entry.start_date.day, tz="UTC"),
        catchup=False,
        params=retraining_params(entry),
        max_active_runs=1,
        tags=["trainyard", "retraining"],
        doc_md=f"Retrains `{entry.model_name}` on `{entry.dataset}` with `{entry.algorithm}`.",
    ) as dag:
        plan = plan_task()
        snapshot = snapshot_task(plan)
        validation = validate_task(plan, snapshot)
        result = train_step(plan, snapshot, validation, algorithm=entry.algorithm)
        evaluation = evaluate_task(plan, result)
        register_task(plan, snapshot, validation, result, evaluation)
    return dag
