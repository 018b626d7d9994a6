"""Per-epoch scalars as TensorBoard event files (the `tensorboard` package's writer, through
torch.utils.tensorboard), kept in the store beside metrics.jsonl and rewritten after every epoch,
so TensorBoard can follow a run while it trains.

A resumed try starts a new local event file, replays the epochs its checkpoint holds, and then
replaces the stored file: the stored events always show each epoch once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steps.store import ArtifactStore
from steps.training.contract import EpochRecord, StopRecord

#: TensorBoard tag -> EpochRecord field.
SCALAR_TAGS = {
    "loss/train": "train_loss",
    "loss/test": "test_loss",
    "metrics/accuracy": "test_accuracy",
    "metrics/macro_f1": "test_macro_f1",
    "optimizer/learning_rate": "learning_rate",
    "time/epoch_s": "wall_time_s",
}


def write_epoch_scalars(writer: Any, record: EpochRecord) -> None:
    for tag, name in SCALAR_TAGS.items():
        value = getattr(record, name)
        if value is not None:
            writer.add_scalar(tag, float(value), global_step=record.epoch, walltime=record.finished_at_unix_s)


def write_event_file(records: list[EpochRecord], local_dir: Path) -> Path:
    """One event file holding `records` (for runs whose trainer wrote none, from their metrics.jsonl)."""
    from torch.utils.tensorboard import SummaryWriter

    local_dir.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(local_dir))
    try:
        for record in records:
            write_epoch_scalars(writer, record)
    finally:
        writer.close()
    return _event_file(local_dir)


def _event_file(local_dir: Path) -> Path:
    files = sorted(local_dir.glob("*tfevents*"))
    if len(files) != 1:
        raise RuntimeError(f"expected one TensorBoard event file in {local_dir}, found {len(files)}")
    return files[0]


@dataclass
class TensorBoardHook:
    """An epoch-end hook: append the epoch's scalars, then store the whole event file."""

    store: ArtifactStore
    key: str
    local_dir: Path
    _writer: Any = field(default=None, init=False)

    def start(self, history: list[EpochRecord]) -> TensorBoardHook:
        from torch.utils.tensorboard import SummaryWriter

        self.local_dir.mkdir(parents=True, exist_ok=True)
        # Nothing is flushed on a timer: every epoch flushes and uploads.
        self._writer = SummaryWriter(log_dir=str(self.local_dir), flush_secs=3600)
        for record in history:
            write_epoch_scalars(self._writer, record)
        if history:
            self._upload()
        return self

    def on_epoch_end(self, state: Any, record: EpochRecord) -> StopRecord | None:
        write_epoch_scalars(self._writer, record)
        self._upload()
        return None

    def _upload(self) -> None:
        self._writer.flush()
        self.store.put_file(self.key, _event_file(self.local_dir))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
