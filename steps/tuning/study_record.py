"""What a study found: one TrialRecord per finished trial, and the StudyRecord that lists them best first.

A trial's record is written once (create-only) when its wave is recorded; the study record is
rebuilt from them after every wave and when the study finishes, so `trainyard study` shows a
running study's progress too.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from steps.lifecycle.run_failure import one_line, read_failures
from steps.store import ArtifactStore, ObjectExists
from steps.store.run_layout import RunLayout, StudyLayout
from steps.training.contract import PrunerSpec, TrainerResult

TrialStatus = Literal["completed", "pruned", "failed"]
StudyStatus = Literal["running", "finished", "failed"]
_STATUS_ORDER = {"completed": 0, "pruned": 1, "failed": 2}


class TrialRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    wave: int
    run_key: str  # the trial's own run: runs/<run_key>/train/...
    params: dict[str, Any]
    seed: int
    status: TrialStatus
    epochs_completed: int
    objective_per_epoch: list[float]  # the objective after each epoch, as reported to the pruner
    objective: float | None  # the trained (or pruned) model's objective on the eval set; None if failed
    wall_time_s: float | None  # the trainer's own wall time
    weights_sha256: str | None = None
    failure: str | None = None  # why a failed trial failed, in one line


class StudyRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    study_id: str
    status: StudyStatus
    dag_id: str
    airflow_run_id: str
    dataset: str
    algorithm: str
    trainer: str  # the pinned trainer every trial ran (image digest or code hash)
    objective: str
    sampler: str
    pruner: PrunerSpec
    seed: int
    max_trials: int
    parallel_trials: int
    epochs: int
    search_space: dict[str, Any]
    trials: list[TrialRecord]  # best first
    best_trial: int | None
    epochs_trained: int  # over every trial: what early stopping saves shows here
    trainer_wall_time_s: float
    updated_at: str

    def trial(self, number: int) -> TrialRecord:
        for trial in self.trials:
            if trial.number == number:
                return trial
        raise KeyError(f"study {self.study_id} has no trial {number}")


def ranked(trials: list[TrialRecord]) -> list[TrialRecord]:
    """Best first: completed by objective, then pruned by objective, then failed; ties by trial number."""
    return sorted(
        trials,
        key=lambda t: (_STATUS_ORDER[t.status], -(t.objective if t.objective is not None else float("-inf")), t.number),
    )


def best_trial(trials: list[TrialRecord]) -> TrialRecord | None:
    """The best completed trial: a pruned one never ran its full budget, so it is never the one registered."""
    completed = [t for t in ranked(trials) if t.status == "completed"]
    return completed[0] if completed else None


def trial_outcome(
    store: ArtifactStore, number: int, wave: int, params: dict[str, Any], seed: int, objective: str,
    run_key: str, reported: dict[int, float],
) -> TrialRecord:
    """Read what trial `number`'s run left in the store; no result means it failed."""
    layout = RunLayout(run_key)
    common = dict(number=number, wave=wave, run_key=run_key, params=params, seed=seed)
    if store.exists(layout.train.result):
        result = TrainerResult.model_validate_json(store.get_bytes(layout.train.result))
        per_epoch = [float(e[f"test_{objective}"]) for e in _epochs(store, layout)]
        return TrialRecord(
            **common,
            status=result.status,
            epochs_completed=result.epochs_completed,
            objective_per_epoch=per_epoch,
            objective=float(getattr(result.metrics, objective)),
            wall_time_s=result.wall_time_s,
            weights_sha256=result.weights_sha256,
        )
    return TrialRecord(
        **common,
        status="failed",
        epochs_completed=len(reported),
        objective_per_epoch=[reported[step] for step in sorted(reported)],
        objective=None,
        wall_time_s=None,
        failure=_failure_reason(store, layout),
    )


def _epochs(store: ArtifactStore, layout: RunLayout) -> list[dict]:
    if not store.exists(layout.train.metrics):
        return []
    return [json.loads(line) for line in store.get_bytes(layout.train.metrics).decode().splitlines() if line.strip()]


def _failure_reason(store: ArtifactStore, layout: RunLayout) -> str:
    """The trainer's own last error line when it left one, else what its train task recorded."""
    if store.exists(layout.train.trainer_log):
        lines = store.get_bytes(layout.train.trainer_log).decode(errors="replace").splitlines()
        errors = [line for line in lines if "trainyard-trainer: error:" in line]
        if errors:
            return one_line(errors[-1])
    recorded = read_failures(store, layout.run_key)  # the trial's own run: its train step is all it has
    if recorded:
        return next(iter(recorded.values())).reason
    return "the trial's train task ended without a result (see its task log)"


def commit_trial_record(store: ArtifactStore, layout: StudyLayout, record: TrialRecord) -> TrialRecord:
    """Write once; a retry finds the first write and keeps it."""
    try:
        store.put_bytes(layout.trial(record.number), record.model_dump_json(indent=2).encode(), if_absent=True)
    except ObjectExists:
        return load_trial_record(store, layout, record.number) or record
    return record


def load_trial_record(store: ArtifactStore, layout: StudyLayout, number: int) -> TrialRecord | None:
    key = layout.trial(number)
    return TrialRecord.model_validate_json(store.get_bytes(key)) if store.exists(key) else None


def trial_records(store: ArtifactStore, layout: StudyLayout) -> list[TrialRecord]:
    return [TrialRecord.model_validate_json(store.get_bytes(key)) for key in store.list_keys(layout.trials_prefix)]


def load_study_record(store: ArtifactStore, study_id: str) -> StudyRecord:
    from steps.store import ObjectNotFound

    key = StudyLayout(study_id).record
    if not store.exists(key):
        raise ObjectNotFound(f"no study {study_id!r} in {store.location} (no {key})")
    return StudyRecord.model_validate_json(store.get_bytes(key))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
