"""Thin Airflow adapters for the pipeline steps: read context and XCom, call one step,
return its typed record as JSON-able XCom. No logic beyond that lives here.

Every XCom is one typed record's JSON (RunPlan, SnapshotRef, ValidationSummary, TrainerResult,
EvaluationRecord, RegisteredVersion); each task parses what it receives with the record's model.
"""
from __future__ import annotations

from functools import partial
from typing import Any

from airflow.sdk import task

from operators.failure_recording import records_failure
from operators.xcom import XComRecord


@task(task_id="plan", multiple_outputs=False)
@records_failure("plan")
def plan_task(**context: Any) -> dict:
    from operators.context import load_catalog, load_settings, open_artifact_store, planning_settings, run_identity
    from operators.image_resolution import digest_checker_for
    from operators.run_kind import is_backfill, triggering_dataset_hash
    from steps.lifecycle.plan import parse_request, plan_run
    from steps.lifecycle.replay import backfill_plan

    settings = load_settings()
    store = open_artifact_store(settings)
    dag_id, run_id, logical_date = run_identity(context)
    params = {k: v for k, v in context["params"].items() if v is not None}
    replay = params.pop("replay", "exact")
    backfill = is_backfill(context)
    request = parse_request({**params, "promote": not backfill})
    plan_for = partial(
        plan_run,
        request,
        load_catalog(settings, store),
        dag_id=dag_id,
        airflow_run_id=run_id,
        **planning_settings(settings),
    )
    plan = plan_for(logical_date=logical_date)
    if backfill and logical_date is not None:
        # A current-code replay trains old data on today's trainer, not the one current on that date.
        today = plan_for(logical_date=None).image if replay == "current-code" else None
        plan = backfill_plan(store, plan, logical_date, replay, digest_exists=digest_checker_for(settings),
                             current_image=today)
    elif (event_hash := triggering_dataset_hash(context, plan.dataset)) is not None:
        plan = plan.model_copy(update={"pinned_dataset_hash": event_hash})
    print(f"plan {plan.run_key}: model {plan.model_name}, trainer {plan.image.pinned_reference}, "
          f"replay={plan.replay} of {plan.replay_of or '-'}, promote={plan.promote}")
    return plan.model_dump(mode="json")


@task(task_id="snapshot", multiple_outputs=False)
@records_failure("snapshot")
def snapshot_task(plan: XComRecord) -> dict:
    from datetime import date
    from pathlib import Path

    from operators.context import load_settings, open_artifact_store
    from steps.data.snapshot import load_snapshot, snapshot_dataset
    from steps.data.stat_cache import StatCache
    from steps.lifecycle.plan import RunPlan

    run = RunPlan.model_validate(plan)
    settings = load_settings()
    if run.pinned_dataset_hash:  # a replay or an asset event names the exact snapshot
        pinned = load_snapshot(open_artifact_store(settings), run.dataset, run.pinned_dataset_hash)
        print(f"snapshot {run.dataset}@{pinned.dataset_hash} (pinned, verified)")
        return pinned.ref().model_dump(mode="json")
    with StatCache() as cache:
        outcome = snapshot_dataset(
            open_artifact_store(settings),
            run.dataset,
            Path(run.dataset_source),
            as_of=date.fromisoformat(run.as_of) if run.as_of else None,
            cache=cache,
        )
    print(
        f"snapshot {run.dataset}@{outcome.snapshot.dataset_hash}: {len(outcome.snapshot.files)} files, "
        f"{outcome.files_hashed} hashed, {outcome.bytes_uploaded} bytes stored"
    )
    return outcome.snapshot.ref(created=outcome.created).model_dump(mode="json")


@task(task_id="validate", multiple_outputs=False)
@records_failure("validate")
def validate_task(plan: XComRecord, snapshot: XComRecord) -> dict:
    from operators.context import load_settings, open_artifact_store
    from operators.training_reuse import warm_up_trainer_if_it_will_run
    from steps.data.snapshot import SnapshotRef
    from steps.data.validation_run import validate_snapshot
    from steps.lifecycle.plan import RunPlan

    warm_up_trainer_if_it_will_run(plan, snapshot)
    run = RunPlan.model_validate(plan)
    ref = SnapshotRef.model_validate(snapshot)
    summary = validate_snapshot(open_artifact_store(load_settings()), run.dataset, ref.dataset_hash, run.schema_name, run.run_key)
    if summary.reused_from:
        print(f"validation of {run.dataset}@{ref.dataset_hash[:12]} reused from run {summary.reused_from} "
              f"(suite {summary.suite_sha256 and summary.suite_sha256[:12]}, Great Expectations {summary.gx_version})")
    return summary.model_dump(mode="json")


def train(plan: dict, snapshot: dict) -> dict:
    """The train step on the local executors; operators/train_operator.py runs it as the `train` task
    (retried per operators/retry_policy.py; a retried trainer resumes from its run's newest checkpoint)."""
    from operators.context import executor_for, load_settings
    from steps.data.snapshot import SnapshotRef
    from steps.lifecycle.plan import RunPlan
    from steps.lifecycle.train import run_training

    settings = load_settings()
    run = RunPlan.model_validate(plan)
    dataset_hash = SnapshotRef.model_validate(snapshot).dataset_hash
    result = run_training(
        run, dataset_hash, executor_for(run.executor, settings), settings.store, objective=settings.primary_metric
    )
    if result.resumed is not None:
        print(f"train: resumed at epoch {result.resumed.from_epoch} from {result.resumed.checkpoint_key}")
    return result.model_dump(mode="json")


@task(task_id="evaluate", multiple_outputs=False)
@records_failure("evaluate")
def evaluate_task(plan: XComRecord, result: XComRecord) -> dict:
    from operators.context import executor_for, load_settings, open_artifact_store
    from steps.lifecycle.evaluate import evaluate_challenger
    from steps.lifecycle.plan import RunPlan
    from steps.training.contract import TrainerResult

    settings = load_settings()
    run = RunPlan.model_validate(plan)
    if run.executor == "kubernetes":  # re-scoring a champion runs training code: in its own pod, never here
        from operators.kubernetes_executor import KubernetesPodExecutor

        executor = KubernetesPodExecutor(team=run.team)
    else:
        executor = executor_for(run.executor, settings)
    record = evaluate_challenger(
        open_artifact_store(settings),
        settings.store,
        run,
        TrainerResult.model_validate(result),
        executor,
        primary_metric=settings.primary_metric,
        min_improvement=settings.min_improvement,
    )
    print(f"evaluation: {record.reason}")
    return record.model_dump(mode="json")


@task(task_id="register", multiple_outputs=False)
@records_failure("register")
def register_task(plan: XComRecord, snapshot: XComRecord, validation: XComRecord, result: XComRecord, evaluation: XComRecord) -> dict:
    from operators.context import load_settings, open_artifact_store
    from steps.data.snapshot import SnapshotRef, load_snapshot
    from steps.data.validation_run import ValidationSummary
    from steps.lifecycle.manifest import EvaluationRecord, ReplayRecord
    from steps.lifecycle.plan import RunPlan
    from steps.lifecycle.register import register_model
    from steps.lifecycle.replay import verify_reproduction
    from steps.training.contract import TrainerResult

    store = open_artifact_store(load_settings())
    run = RunPlan.model_validate(plan)
    trained = TrainerResult.model_validate(result)
    if run.replay == "exact" and run.replay_of:
        record = verify_reproduction(store, run, trained.weights_sha256)  # raises with both hashes
        print(record.message)
        return record.model_dump(mode="json")
    validated = ValidationSummary.model_validate(validation)
    registered = register_model(
        store,
        run,
        load_snapshot(store, run.dataset, SnapshotRef.model_validate(snapshot).dataset_hash),
        validated.report_key,
        validated.expectations_evaluated,
        trained,
        EvaluationRecord.model_validate(evaluation),
        replay=ReplayRecord(mode=run.replay, reproduced_from=run.replay_of) if run.replay_of else None,
        historical=run.historical,
        validation=validated,
    )
    print(
        f"registered {registered.model_name}@{registered.version} "
        f"(champion={registered.champion}, historical={run.historical}) "
        f"manifest {registered.store_location}/{registered.manifest_key}; {registered.champion_reason}"
    )
    return registered.model_dump(mode="json")


@task(task_id="announce_snapshot", multiple_outputs=False)
def announce_snapshot_task(snapshot: XComRecord, **context: Any) -> dict:
    """Emit the dataset's asset event (with its hash) only when the snapshot is new."""
    from airflow.sdk.exceptions import AirflowSkipException

    from steps.data.snapshot import SnapshotRef

    ref = SnapshotRef.model_validate(snapshot)
    if not ref.created:
        raise AirflowSkipException(f"{ref.dataset}@{ref.dataset_hash[:12]} was already stored")
    for asset in context["outlets"]:
        context["outlet_events"][asset].extra = {"dataset_hash": ref.dataset_hash}
    return ref.model_dump(mode="json")
