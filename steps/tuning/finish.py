"""Summarise a study (record.json and its plots) and pick the trial that goes on to evaluate and register.

The study fails only when no trial completed (every trial failed, or every one was pruned):
there is nothing to register then. Otherwise failed trials are just part of the record.
"""
from __future__ import annotations

from steps.lifecycle.plan import RunPlan
from steps.store import ArtifactStore
from steps.training.contract import TrainerResult
from steps.tuning.plots import optimization_history_png, parameters_png
from steps.tuning.study_plan import StudyPlan
from steps.tuning.study_record import StudyRecord, StudyStatus, best_trial, now_iso, ranked, trial_records


class StudyFailed(RuntimeError):
    """No trial of the study completed; the message counts what happened instead."""


def summarize(store: ArtifactStore, plan: StudyPlan, status: StudyStatus = "running") -> StudyRecord:
    """Rebuild the study record from its trial records and store it with its plots."""
    trials = ranked(trial_records(store, plan.layout))
    best = best_trial(trials)
    request = plan.request
    record = StudyRecord(
        study_id=plan.study_id,
        status=status,
        dag_id=plan.base.dag_id,
        airflow_run_id=plan.base.airflow_run_id,
        dataset=plan.base.dataset,
        algorithm=plan.base.algorithm,
        trainer=plan.base.image.pinned_reference,
        objective=request.objective,
        sampler=request.sampler,
        pruner=plan.pruner,
        seed=request.seed,
        max_trials=request.max_trials,
        parallel_trials=request.parallel_trials,
        epochs=plan.pruner.max_epochs,
        search_space=plan.space.to_raw(),
        trials=trials,
        best_trial=best.number if best else None,
        epochs_trained=sum(t.epochs_completed for t in trials),
        trainer_wall_time_s=round(sum(t.wall_time_s or 0.0 for t in trials), 3),
        updated_at=now_iso(),
    )
    # Plots first, the record last: a reader that finds the record finds its pictures.
    store.put_bytes(plan.layout.history_plot, optimization_history_png(record))
    store.put_bytes(plan.layout.parameters_plot, parameters_png(record))
    store.put_bytes(plan.layout.record, record.model_dump_json(indent=2).encode())
    return record


def finish_study(store: ArtifactStore, plan: StudyPlan) -> tuple[StudyRecord, RunPlan, TrainerResult]:
    """The final record, and the best completed trial's plan and trainer result (for evaluate and register)."""
    trials = trial_records(store, plan.layout)
    best = best_trial(trials)
    if best is None:
        summarize(store, plan, "failed")
        counts = {s: sum(t.status == s for t in trials) for s in ("failed", "pruned")}
        raise StudyFailed(
            f"study {plan.study_id}: no trial completed ({counts['failed']} failed, {counts['pruned']} pruned "
            f"of {len(trials)}); nothing to register"
        )
    record = summarize(store, plan, "finished")
    trial_plan = plan.trial_plan(best.number, best.params)
    result = TrainerResult.model_validate_json(store.get_bytes(trial_plan.layout.train.result))
    return record, trial_plan, result
