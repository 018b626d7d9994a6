"""Epoch-end hooks that report progress: metrics.jsonl in the store after every epoch (so a status
reader sees a run that is still training), and one log line per epoch with the metrics and an ETA
(the Airflow task log shows the trainer's output)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from steps.store import ArtifactStore
from steps.training.contract import EpochRecord, StopRecord, epochs_jsonl

_LINE_METRICS = ("train_loss", "test_loss", "test_accuracy", "test_macro_f1")


@dataclass
class MetricsLogHook:
    store: ArtifactStore
    key: str

    def on_epoch_end(self, state, record: EpochRecord) -> StopRecord | None:
        self.store.put_bytes(self.key, epochs_jsonl(state.history))
        return None


def duration_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def epoch_line(record: EpochRecord, epochs: int, seconds_per_epoch: float) -> str:
    values = [f"{name}={getattr(record, name):.4f}" for name in _LINE_METRICS if getattr(record, name) is not None]
    if record.learning_rate is not None:
        values.append(f"lr={record.learning_rate:g}")
    remaining = epochs - record.epoch
    eta = f"ETA {duration_text(remaining * seconds_per_epoch)}" if remaining else "done"
    return f"epoch {record.epoch}/{epochs} {' '.join(values)} ({seconds_per_epoch:.1f}s/epoch, {eta})"


@dataclass
class ProgressLineHook:
    """Prints one line per epoch. The ETA is this try's mean time per epoch, hooks included."""

    epochs: int
    emit: Callable[[str], None] = print
    _started: float = field(default_factory=time.monotonic, init=False)
    _done_here: int = field(default=0, init=False)

    def on_epoch_end(self, state, record: EpochRecord) -> StopRecord | None:
        self._done_here += 1
        per_epoch = (time.monotonic() - self._started) / self._done_here
        self.emit(epoch_line(record, self.epochs, per_epoch))
        return None
