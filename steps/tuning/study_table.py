"""A study record as text for people: a header, then one row per trial, best first."""
from __future__ import annotations

from typing import Any

from steps.lifecycle.register import RegisteredVersion
from steps.tuning.study_record import StudyRecord


def param_value(value: Any) -> str:
    """A parameter's value as the study table and TensorBoard's run names show it."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]


def study_lines(record: StudyRecord, registered: RegisteredVersion | None = None) -> list[str]:
    pruner = record.pruner
    if pruner.kind == "median":
        stopping = f"median rule (after {pruner.min_trials} completed trials, from epoch {pruner.start_epoch})"
    elif pruner.kind == "none":
        stopping = "no early stopping"
    else:
        stopping = f"{pruner.kind} (from epoch {pruner.start_epoch}, reduction factor {pruner.reduction_factor})"
    budget = record.epochs * len(record.trials)
    lines = [
        f"study {record.study_id}: {record.status}",
        f"  {record.algorithm} on {record.dataset}, trainer {record.trainer}",
        f"  {record.sampler} sampler, seed {record.seed}; {stopping}; maximising {record.objective}",
        f"  {len(record.trials)} of {record.max_trials} trials, {record.parallel_trials} per wave, "
        f"{record.epochs} epochs each; {record.epochs_trained} of {budget} epochs trained, "
        f"trainers ran {record.trainer_wall_time_s:.1f}s",
        "",
    ]
    names = sorted(record.search_space)
    header = ["rank", "trial", "status", record.objective, "epochs", "trainer_s", *names]
    rows = []
    for rank, trial in enumerate(record.trials, start=1):
        rows.append(
            [
                str(rank),
                str(trial.number),
                trial.status,
                f"{trial.objective:.4f}" if trial.objective is not None else "-",
                f"{trial.epochs_completed}/{record.epochs}",
                f"{trial.wall_time_s:.1f}" if trial.wall_time_s is not None else "-",
                *[param_value(trial.params.get(name, "-")) for name in names],
            ]
        )
    lines += _table(header, rows)
    failed = [t for t in record.trials if t.status == "failed"]
    for trial in failed:
        lines.append(f"trial {trial.number} failed: {trial.failure}")
    if record.best_trial is not None:
        best = record.trial(record.best_trial)
        line = f"best: trial {best.number}, {record.objective}={best.objective:.4f}, run {best.run_key}"
        if registered is not None:
            line += f"; registered as {registered.model_name}@{registered.version} (champion: {registered.champion})"
        lines += ["", line]
    return lines
