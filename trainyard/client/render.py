"""The client's records as the text a person reads (the CLI prints these; so can a notebook)."""
from __future__ import annotations

from steps.lifecycle.run_progress import EpochRecord
from steps.lifecycle.run_status import failure_lines, resume_line, training_lines
from trainyard.client.records import (
    FAILED_TASK_STATES,
    RETRY_TASK_STATES,
    BackfillDate,
    BackfillReport,
    CancelResult,
    RunStatus,
    RunSummary,
    TaskState,
)

DAY_WIDTH = 10


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f}s"


def epoch_line(status: RunStatus, epoch: EpochRecord | None = None) -> str | None:
    """`epoch 3/8: train_loss=...` for `epoch` (default: the latest)."""
    record = epoch or (status.epochs[-1] if status.epochs else None)
    if record is None:
        return None
    planned = f"/{status.epochs_planned}" if status.epochs_planned else ""
    return f"epoch {record.epoch}{planned}: {record.metrics_line}"


def task_line(task: TaskState, status: RunStatus) -> str:
    text = f"  {task.task_id:<12} {task.state or '-':<16}"
    if task.try_number > 1:
        text += f" try {task.try_number}"
    if task.state in ("success", "failed") and task.duration_s is not None:
        text += f" {_duration(task.duration_s)}"
    if task.task_id == "train" and (line := epoch_line(status)):
        text += f"  {line}"
    return text.rstrip()


def _stored_failure_lines(status: RunStatus, steps: set[str] | None = None) -> list[str]:
    """The store's failure records of steps that did not end failed: a task Airflow will try again
    (`failed, will retry`, with the kind) and one a later try recovered (`earlier try failed`). A task
    that ended failed keeps its one summary line in `status.failures`."""
    if status.stored is None:
        return []
    ended_failed = status.tasks_in(FAILED_TASK_STATES)
    keep = [f for f in status.stored.failures if f.step not in ended_failed and (steps is None or f.step in steps)]
    stored = status.stored.model_copy(update={"failures": keep})
    return failure_lines(stored, ended_failed=ended_failed, retrying=status.tasks_in(RETRY_TASK_STATES))


def status_lines(status: RunStatus) -> list[str]:
    lines = [f"{status.dag_id} run {status.run_id}: {status.state}", f"  {status.url}"]
    lines += [task_line(task, status) for task in status.tasks]
    if status.stored is not None:
        lines += training_lines(status.stored) + _stored_failure_lines(status)
    lines += [f"  {reason}" for reason in status.failures.values()]
    if status.store_note:
        lines.append(f"  ({status.store_note})")
    if status.outcome:
        lines.append(f"  {status.outcome.summary}")
    return lines


def changes(before: RunStatus | None, after: RunStatus) -> list[str]:
    """What changed between two polls, one line each (what `--watch` prints as it happens)."""
    lines = []
    previous = {t.task_id: t for t in before.tasks} if before else {}
    for task in after.tasks:
        old = previous.get(task.task_id)
        if task.state is not None and (old is None or (old.state, old.try_number) != (task.state, task.try_number)):
            tail = f" ({_duration(task.duration_s)})" if task.state in ("success", "failed") and task.duration_s else ""
            retry = f" try {task.try_number}" if task.try_number > 1 else ""
            lines.append(f"{task.task_id}: {task.state}{retry}{tail}")
            if task.state in RETRY_TASK_STATES:
                lines += [f"{task.task_id}: {line.strip()}" for line in _stored_failure_lines(after, {task.task_id})]
    for epoch in after.epochs[len(before.epochs) if before else 0:]:
        lines.append(f"train: {epoch_line(after, epoch)}")
    resumed = after.stored.training.resumed if after.stored and after.stored.training else None
    resumed_before = before.stored.training.resumed if before and before.stored and before.stored.training else None
    if resumed is not None and resumed_before is None:
        lines.append(f"train: resumed: {resume_line(resumed)}")
    if after.store_note and (before is None or before.store_note != after.store_note):
        lines.append(f"({after.store_note})")
    if after.finished:
        lines.append(f"run {after.state}")
        lines += list(after.failures.values())
        if after.outcome:
            lines.append(after.outcome.summary)
    return lines


def run_rows(runs: list[RunSummary]) -> list[str]:
    header = f"{'RUN ID':<44} {'DAG':<30} {'STATE':<8} {'DATASET':<10} {'ALGORITHM':<22} {'STARTED':<19} DURATION"
    rows = [header]
    for run in runs:
        started = run.started_at.strftime("%Y-%m-%d %H:%M:%S") if run.started_at else "-"
        rows.append(f"{run.run_id:<44} {run.dag_id:<30} {run.state:<8} {run.dataset or '-':<10} "
                    f"{run.algorithm or '-':<22} {started:<19} {_duration(run.duration_s) or '-'}")
    return rows


def cancel_lines(result: CancelResult) -> list[str]:
    if not result.stopped_tasks and result.note:
        return [f"{result.dag_id} run {result.run_id}: {result.note}"]
    lines = [f"cancelled {result.dag_id} run {result.run_id} (was {result.state_before})"]
    if result.stopped_tasks:
        lines.append(f"  killing running task(s): {', '.join(result.stopped_tasks)}")
    if result.trainer_stopped:
        lines.append(f"  trainer stopped: {result.trainer_stopped}")
    if result.note:
        lines.append(f"  {result.note}")
    return lines


def backfill_date_line(row: BackfillDate) -> str:
    if row.outcome is not None:
        what = row.outcome.summary
    elif row.failure:
        what = row.failure
    else:
        what = ""
    return f"  {row.day:<{DAY_WIDTH}}  {row.state:<8} {what}".rstrip()


def backfill_lines(report: BackfillReport) -> list[str]:
    lines = [f"backfill {report.backfill_id} of {report.dag_id}: {'complete' if report.completed else 'running'}"]
    return lines + [backfill_date_line(row) for row in report.dates]
