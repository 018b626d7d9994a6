"""Thin Airflow adapters for the pipeline steps: read context and XCom, call one step,
return its typed record as JSON-able XCom. No logic beyond that lives here."""
from __future__ import annotations

from typing import Any

from airflow.sdk import task


@task(task_id="plan")
def plan_task(**context: Any) -> dict:
    from operators.context import load_catalog, load_settings, open_artifact_store, run_identity
    from operators.image_resolution import resolver_for
    from steps.plan import parse_request, plan_run

    settings = load_settings()
    store = open_artifact_store(settings)
    dag_id, run_id, logical_date = run_identity(context)
    request = parse_request({k: v for k, v in context["params"].items() if v is not None})
    plan = plan_run(
        request,
        load_catalog(settings, store),
        dag_id=dag_id,
        airflow_run_id=run_id,
        logical_date=logical_date,
        executor=settings.executor,
        split_seed=settings.split_seed,
        test_fraction=settings.test_fraction,
        num_threads=settings.num_threads,
        image_resolver=resolver_for(settings),
    )
    return plan.model_dump(mode="json")


@task(task_id="snapshot")
def snapshot_task(plan: dict) -> dict:
    from datetime import date
    from pathlib import Path

    from operators.context import load_settings, open_artifact_store
    from steps.plan import RunPlan
    from steps.snapshot import snapshot_dataset
    from steps.stat_cache import StatCache

    run = RunPlan.model_validate(plan)
    settings = load_settings()
    outcome = snapshot_dataset(
        open_artifact_store(settings),
        run.dataset,
        Path(run.dataset_source),
        as_of=date.fromisoformat(run.as_of) if run.as_of else None,
        cache=StatCache(),
    )
    print(
        f"snapshot {run.dataset}@{outcome.snapshot.dataset_hash}: {len(outcome.snapshot.files)} files, "
        f"{outcome.files_hashed} hashed, {outcome.bytes_uploaded} bytes stored"
    )
    return {"dataset": run.dataset, "dataset_hash": outcome.snapshot.dataset_hash}


@task(task_id="validate")
def validate_task(plan: dict, snapshot: dict) -> dict:
    from operators.context import load_settings, open_artifact_store
    from steps.plan import RunPlan
    from steps.validation_run import validate_snapshot

    run = RunPlan.model_validate(plan)
    summary = validate_snapshot(
        open_artifact_store(load_settings()), run.dataset, snapshot["dataset_hash"], run.schema_name, run.run_key
    )
    return summary.model_dump(mode="json")


@task(task_id="train")
def train_task(plan: dict, snapshot: dict, validation: dict) -> dict:
    from operators.context import load_settings
    from steps.executors.factory import make_executor
    from steps.plan import RunPlan
    from steps.train import run_training

    settings = load_settings()
    run = RunPlan.model_validate(plan)
    result = run_training(run, snapshot["dataset_hash"], make_executor(run.executor), settings.store)
    return result.model_dump(mode="json")


@task(task_id="evaluate")
def evaluate_task(plan: dict, result: dict) -> dict:
    from operators.context import load_settings, open_artifact_store
    from steps.contract import TrainerResult
    from steps.evaluate import evaluate_challenger
    from steps.executors.factory import make_executor
    from steps.plan import RunPlan

    settings = load_settings()
    run = RunPlan.model_validate(plan)
    executor_kind = run.executor if run.executor != "kubernetes" else "subprocess"
    record = evaluate_challenger(
        open_artifact_store(settings),
        settings.store,
        run,
        TrainerResult.model_validate(result),
        make_executor(executor_kind),
        primary_metric=settings.primary_metric,
        min_improvement=settings.min_improvement,
    )
    print(f"evaluation: {record.reason}")
    return record.model_dump(mode="json")


@task(task_id="register")
def register_task(plan: dict, snapshot: dict, validation: dict, result: dict, evaluation: dict) -> dict:
    from operators.context import load_settings, open_artifact_store
    from steps.contract import TrainerResult
    from steps.manifest import EvaluationRecord
    from steps.plan import RunPlan
    from steps.register import register_model
    from steps.snapshot import load_snapshot

    store = open_artifact_store(load_settings())
    run = RunPlan.model_validate(plan)
    registered = register_model(
        store,
        run,
        load_snapshot(store, run.dataset, snapshot["dataset_hash"]),
        validation["report_key"],
        validation["expectations_evaluated"],
        TrainerResult.model_validate(result),
        EvaluationRecord.model_validate(evaluation),
    )
    print(
        f"registered {registered.model_name}@{registered.version} "
        f"(champion={registered.champion}) manifest {registered.store_location}/{registered.manifest_key}"
    )
    return registered.model_dump(mode="json")
