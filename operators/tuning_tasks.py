"""Thin Airflow adapters for a hyperparameter study's steps (steps/tuning): read context and XCom,
call one step, return its typed record's JSON. The trials themselves run in the ordinary train step.

Trigger rules carry the wave structure (dags/hyperparameter_search.py): a wave is recorded once all
its trials are done, failed ones included; a wave the study does not need is skipped, and so is
everything after it.
"""
from __future__ import annotations

from typing import Any

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.task.trigger_rule import TriggerRule

from operators.failure_recording import records_failure

# The wave tasks read the study's plan from the store (by the DAG run's run key, the study id), not
# from plan_study's XCom: an XCom input would make plan_study an upstream of every wave, and a wave
# would then never be skipped when the waves before it were.
#
# Wave k > 1 is proposed once wave k-1 is recorded; or, after a restart in which every trial of wave
# k-1 had already run (its suggest task recorded it, so record_wave was skipped), right after it.
SUGGEST_AFTER_FIRST_WAVE = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
# Failed trials are part of a wave's outcome; a wave with nothing to train (skipped) records nothing.
RECORD_WAVE = TriggerRule.ALL_DONE_MIN_ONE_SUCCESS
# Unneeded waves are skipped; any failed study task fails the study.
FINISH_STUDY = TriggerRule.NONE_FAILED


@task(task_id="plan_study", multiple_outputs=True)  # study_id; run: what every trial shares, as a RunPlan
@records_failure("plan_study")
def plan_study_task(team: str, **context: Any) -> dict:
    from operators.context import load_catalog, load_settings, open_artifact_store, planning_settings, run_identity
    from steps.lifecycle.plan import BadRequest, run_key_for
    from steps.tuning.request import parse_study_request
    from steps.tuning.study_plan import plan_study, resumed_plan, start_study

    settings = load_settings()
    store = open_artifact_store(settings)
    dag_id, run_id, logical_date = run_identity(context)
    request = parse_study_request(dict(context["params"]))
    if request.team != team:
        raise BadRequest(f"this DAG runs studies for team {team!r} (its pool); trigger the one for team {request.team!r}")
    catalog = load_catalog(settings, store)
    plan = resumed_plan(store, run_key_for(dag_id, run_id), request, catalog) or start_study(
        store,
        plan_study(
            request, catalog, dag_id=dag_id, airflow_run_id=run_id, logical_date=logical_date,
            **planning_settings(settings),
        ),
    )
    r = plan.request
    print(
        f"study {plan.study_id}: {r.max_trials} trials of {plan.base.algorithm} on {plan.base.dataset}, "
        f"{r.parallel_trials} per wave, {r.sampler} sampler, {r.pruner} pruner, {r.epochs} epochs each, "
        f"trainer {plan.base.image.pinned_reference}; space {', '.join(plan.space.params)}"
    )
    return {"study_id": plan.study_id, "run": plan.base.model_dump(mode="json")}


def _study(context: dict[str, Any]):
    from operators.context import load_settings, open_artifact_store, run_identity
    from steps.lifecycle.plan import run_key_for
    from steps.tuning.study_plan import stored_plan

    store = open_artifact_store(load_settings())
    dag_id, run_id, _ = run_identity(context)
    plan = stored_plan(store, run_key_for(dag_id, run_id))
    if plan is None:
        raise RuntimeError(f"run {run_id} has no stored study plan; plan_study has not run")
    return store, plan


@task(multiple_outputs=False)
@records_failure("suggest_wave")
def suggest_wave_task(wave: int, **context: Any) -> list[dict]:
    from steps.tuning.waves import suggest_wave

    store, plan = _study(context)
    trials = suggest_wave(store, plan, wave)
    if trials is None:
        raise AirflowSkipException(f"the study already has its {plan.request.max_trials} trials; wave {wave} is not needed")
    for trial in trials:
        assert trial.study is not None
        changed = {k: v for k, v in trial.hyperparameters.items() if k in plan.space.params}
        print(f"wave {wave}: trial {trial.study.trial_number} {changed} -> run {trial.run_key}")
    if not trials:
        print(f"wave {wave}: every trial already ran (a resumed study); recorded without training again")
    return [trial.model_dump(mode="json") for trial in trials]


@task(multiple_outputs=False, trigger_rule=RECORD_WAVE)
@records_failure("record_wave")
def record_wave_task(wave: int, **context: Any) -> list[dict]:
    from steps.tuning.waves import record_wave

    store, plan = _study(context)
    outcomes = record_wave(store, plan, wave)
    if outcomes is None:
        raise RuntimeError(f"wave {wave} of study {plan.study_id} was never proposed")
    for outcome in outcomes:
        score = f"{plan.request.objective}={outcome.objective:.4f}" if outcome.objective is not None else outcome.failure
        print(f"wave {wave}: trial {outcome.number} {outcome.status} after {outcome.epochs_completed} epochs: {score}")
    return [{"trial": o.number, "status": o.status, "objective": o.objective} for o in outcomes]


@task(task_id="finish_study", multiple_outputs=True, trigger_rule=FINISH_STUDY)
@records_failure("finish_study")
def finish_study_task(**context: Any) -> dict:
    from steps.tuning.finish import finish_study

    store, plan = _study(context)
    record, best_plan, result = finish_study(store, plan)
    counts = {s: sum(t.status == s for t in record.trials) for s in ("completed", "pruned", "failed")}
    print(
        f"study {plan.study_id}: {counts['completed']} completed, {counts['pruned']} pruned, {counts['failed']} failed; "
        f"{record.epochs_trained} epochs trained; best trial {record.best_trial} "
        f"{record.objective}={result.metrics.model_dump()[record.objective]:.4f} -> evaluate and register run {best_plan.run_key}"
    )
    return {"plan": best_plan.model_dump(mode="json"), "result": result.model_dump(mode="json")}
