"""A run's status from what its steps stored — why a step failed, how far training got, whether and where
it resumed, what was registered — as one typed record and a few readable lines.

Only the store is read, so this works wherever the store is reachable: `trainyard lineage` shows it for
a registered version's run, and a client of a remote Airflow (`trainyard status`) calls
`read_run_status` and, knowing which tasks ended failed and which will be retried, passes them to
`training_lines` and `failure_lines`.
"""
from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel, ConfigDict

from steps.lifecycle.register import RegisteredVersion
from steps.lifecycle.run_failure import RunFailure, read_failures
from steps.store import ArtifactStore, IntegrityError, ObjectNotFound, StoreError
from steps.store.run_layout import RunLayout
from steps.training.contract import EpochRecord, ResumeInfo, StopRecord, TrainerResult, parse_epochs_jsonl

#: Pipeline order, for listing failures the way the run went.
STEP_ORDER = ("plan", "snapshot", "validate", "train", "evaluate", "register")


class TrainingProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    epochs_completed: int
    epochs_planned: int | None
    last_epoch: EpochRecord | None
    newest_checkpoint_epoch: int | None
    finished: bool  # the trainer wrote result.json
    resumed: ResumeInfo | None = None
    stopped: StopRecord | None = None


class RunStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_key: str
    failures: list[RunFailure]  # each step's latest failed try, in pipeline order
    succeeded_after_failure: list[str]  # steps with a failure record whose output exists: a later try won
    training: TrainingProgress | None
    registered: RegisteredVersion | None


def _step_outputs(layout: RunLayout) -> dict[str, str]:
    return {
        "validate": layout.validation_report,
        "train": layout.train.result,
        "evaluate": layout.evaluation,
        "register": layout.registered,
    }


def _training(store: ArtifactStore, layout: RunLayout) -> TrainingProgress | None:
    outputs = layout.train
    records: list[EpochRecord] = []
    if store.exists(outputs.metrics):
        records = parse_epochs_jsonl(store.get_bytes(outputs.metrics))
    markers = [e for k in store.list_keys(outputs.checkpoints_prefix) if (e := outputs.checkpoint_epoch(k)) is not None
               and k == outputs.checkpoint_marker(e)]
    result = TrainerResult.model_validate_json(store.get_bytes(outputs.result)) if store.exists(outputs.result) else None
    if not records and not markers and result is None:
        return None
    last = records[-1] if records else None
    return TrainingProgress(
        epochs_completed=result.epochs_completed if result else (last.epoch if last else 0),
        epochs_planned=last.epochs_planned if last else None,
        last_epoch=last,
        newest_checkpoint_epoch=max(markers, default=None),
        finished=result is not None,
        resumed=result.resumed if result else None,
        stopped=result.stopped if result else None,
    )


def read_run_status(store: ArtifactStore, run_key: str) -> RunStatus:
    layout = RunLayout(run_key)
    failures = read_failures(store, run_key)
    ordered = sorted(failures.values(), key=lambda f: (STEP_ORDER.index(f.step) if f.step in STEP_ORDER else len(STEP_ORDER), f.step))
    outputs = _step_outputs(layout)
    recovered = [f.step for f in ordered if f.step in outputs and store.exists(outputs[f.step])]
    registered = None
    try:
        registered = RegisteredVersion.model_validate_json(store.get_bytes(layout.registered))
    except (ObjectNotFound, IntegrityError):
        pass
    try:
        training = _training(store, layout)
    except (StoreError, ValueError):  # a half-readable run still gets its failures shown
        training = None
    return RunStatus(
        run_key=run_key, failures=ordered, succeeded_after_failure=recovered, training=training, registered=registered
    )


def _epoch_summary(record: EpochRecord) -> str:
    values = [f"{name}={value:.4f}" for name in ("train_loss", "test_loss", "test_macro_f1")
              if (value := getattr(record, name)) is not None]
    return " ".join(values)


def training_line(progress: TrainingProgress) -> str:
    planned = f" of {progress.epochs_planned}" if progress.epochs_planned else ""
    if progress.finished:
        text = f"finished {progress.epochs_completed}{planned} epochs"
    else:
        text = f"epoch {progress.epochs_completed}{planned} done, not finished"
    if progress.last_epoch is not None:
        text += f" (last: {_epoch_summary(progress.last_epoch)})"
    if progress.stopped is not None:
        text += f"; stopped early ({progress.stopped.status}) after epoch {progress.stopped.after_epoch}: {progress.stopped.reason}"
    if progress.newest_checkpoint_epoch is not None:
        text += f"; newest checkpoint: epoch {progress.newest_checkpoint_epoch}"
    return text


def resume_line(resumed: ResumeInfo | None) -> str:
    if resumed is None:
        return "no: trained from epoch 1"
    text = f"yes: at epoch {resumed.from_epoch} from the checkpoint of epoch {resumed.from_epoch - 1} ({resumed.checkpoint_key})"
    if resumed.unusable_checkpoints:
        text += "; skipped unusable " + "; ".join(resumed.unusable_checkpoints)
    return text


def training_lines(status: RunStatus) -> list[str]:
    """How far training got, its newest checkpoint, and (once the trainer finished) whether it resumed."""
    if status.training is None:
        return []
    lines = [f"  training          : {training_line(status.training)}"]
    if status.training.finished:
        lines.append(f"  resumed           : {resume_line(status.training.resumed)}")
    return lines


def failure_lines(
    status: RunStatus, ended_failed: Collection[str] | None = None, retrying: Collection[str] = ()
) -> list[str]:
    """Each step's latest failure, kind and whether another try comes.

    `ended_failed`: the steps whose task finally failed, `retrying`: those Airflow will try again
    (up_for_retry), when the caller knows (Airflow does); the store alone knows only which steps'
    outputs exist."""
    lines = []
    for failure in status.failures:
        recovered = failure.step in status.succeeded_after_failure or (
            ended_failed is not None and failure.step not in ended_failed
        )
        if failure.step in retrying:
            label, retry = "failed, will retry", "retryable"
        elif recovered:
            label, retry = "earlier try failed", "retryable" if failure.retryable else "not retryable"
        elif not failure.retryable:
            label, retry = "failed", "not retryable"
        elif ended_failed is not None:
            label, retry = "failed", "retryable, no tries left"
        else:
            label, retry = "failed", "retryable"
        attempt = f" on try {failure.try_number}" if failure.try_number else ""
        lines.append(f"  {label:<18}: {failure.step}{attempt} ({failure.kind}, {retry}): {failure.reason}")
    return lines


def status_lines(
    status: RunStatus, ended_failed: Collection[str] | None = None, retrying: Collection[str] = ()
) -> list[str]:
    lines = [f"run {status.run_key}", *training_lines(status), *failure_lines(status, ended_failed, retrying)]
    if status.registered is not None:
        champion = " (champion)" if status.registered.champion else ""
        lines.append(f"  registered        : {status.registered.model_name}@{status.registered.version}{champion}")
    return lines
