"""What a run's store records say about it while it runs and after: the trainer's epochs so far
(metrics.jsonl, rewritten after every epoch), whether the trainer finished (result.json), and why
steps failed (failures/<step>.json). Readers like `trainyard status` call this; it never writes.
"""
from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, ValidationError

from steps.lifecycle.run_failure import RunFailure, read_failures
from steps.store import ArtifactStore, IntegrityError, ObjectNotFound
from steps.store.run_layout import RunLayout


class EpochRecord(BaseModel):
    """One line of metrics.jsonl; trainers may add fields, which are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    epoch: int
    train_loss: float
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_macro_f1: float | None = None
    wall_time_s: float | None = None

    @property
    def metrics_line(self) -> str:
        parts = [f"train_loss={self.train_loss:.4f}"]
        for name in ("test_loss", "test_accuracy", "test_macro_f1"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value:.4f}")
        return " ".join(parts)


class RunProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_key: str
    epochs: list[EpochRecord] = []
    trainer_finished: bool = False  # result.json exists: the trainer wrote all its outputs
    failures: dict[str, RunFailure] = {}  # step -> its latest recorded failure

    @property
    def latest_epoch(self) -> EpochRecord | None:
        return self.epochs[-1] if self.epochs else None


def read_epochs(store: ArtifactStore, run_key: str) -> list[EpochRecord]:
    """The epochs the trainer has recorded so far; none yet (or a record being replaced) reads as []."""
    try:
        text = store.get_bytes(RunLayout(run_key).train.metrics).decode()
    except (ObjectNotFound, IntegrityError):
        # IntegrityError: the trainer replaced the file between our stat and read; the next poll sees it.
        return []
    epochs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            epochs.append(EpochRecord.model_validate(json.loads(line)))
        except (ValueError, ValidationError):
            continue  # one unreadable line must not hide the others
    return epochs


def read_run_progress(store: ArtifactStore, run_key: str) -> RunProgress:
    layout = RunLayout(run_key)
    return RunProgress(
        run_key=run_key,
        epochs=read_epochs(store, run_key),
        trainer_finished=store.exists(layout.train.result),
        failures=read_failures(store, run_key),
    )
