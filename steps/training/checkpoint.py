"""Checkpoints in the store, under the run's own output prefix (steps/store/run_layout.py):

    <output prefix>/checkpoints/epoch-NNNN/state.pt          TrainingState payload (torch.save)
    <output prefix>/checkpoints/epoch-NNNN/checkpoint.json   the marker, written LAST

A checkpoint exists only once its marker does; the marker names every file with its sha256,
the job it belongs to and the epoch records so far. The newest `checkpoints_kept` stay.
Resuming walks the markers newest first and takes the first checkpoint that is intact, of this
job, and loads with `torch.load(weights_only=True)`; every one it skips is reported with why.
"""
from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from steps.hashing import sha256_json
from steps.store import ArtifactStore, ObjectNotFound, StoreError
from steps.store.run_layout import TrainerOutputs
from steps.training.contract import EpochRecord, ResumeInfo, StopRecord, TrainingJob
from steps.training.training_state import TrainingState

log = logging.getLogger(__name__)

MARKER_FORMAT_VERSION = 1
STATE_FILE = "state.pt"


class CheckpointFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    sha256: str
    size_bytes: int


class CheckpointMarker(BaseModel):
    model_config = ConfigDict(frozen=True)

    format_version: int = MARKER_FORMAT_VERSION
    run_id: str
    epoch: int
    job_fingerprint: str
    files: list[CheckpointFile]
    history: list[EpochRecord]
    created_at: str


def job_fingerprint(job: TrainingJob, device: str) -> str:
    """What decides the weights; a checkpoint made for anything else is never resumed from."""
    decisive = job.model_dump(
        mode="json", exclude={"checkpoint_every", "checkpoints_kept", "stall_timeout_s", "output_prefix", "weights_key"}
    )
    return sha256_json({**decisive, "device": device})


class UnusableCheckpoint(ValueError):
    pass


@dataclass(frozen=True)
class PendingCheckpoint:
    epoch: int
    local: Path  # the serialised state in scratch, until it is uploaded
    history: list[EpochRecord]


@dataclass
class CheckpointStore:
    store: ArtifactStore
    outputs: TrainerOutputs
    run_id: str
    fingerprint: str
    scratch: Path
    keep: int = 2
    #: Called with one line per checkpoint a resume could not use (the trainer prints it).
    report: Callable[[str], None] = field(default=log.warning)

    def epochs(self) -> list[int]:
        """Epochs that have a marker, newest first."""
        found = set()
        for key in self.store.list_keys(self.outputs.checkpoints_prefix):
            epoch = self.outputs.checkpoint_epoch(key)
            if epoch is not None and key == self.outputs.checkpoint_marker(epoch):
                found.add(epoch)
        return sorted(found, reverse=True)

    def save(self, state: TrainingState) -> str:
        return self.publish(self.snapshot(state))

    def snapshot(self, state: TrainingState) -> PendingCheckpoint:
        """The state as of now, serialised to scratch: the only part of a save the loop waits for."""
        import torch

        epoch = state.epochs_completed
        local = self.scratch / f"checkpoint-{epoch:04d}.pt"
        payload = state.to_payload()
        # A retry re-saves bit-identical state for the epochs after the checkpoint it resumed from, and one
        # of those may be the corrupt checkpoint it skipped: a content-addressed store never rewrites corrupt
        # content (it reports it), so each save carries its time and is content of its own.
        payload["saved_at_unix_ns"] = time.time_ns()
        torch.save(payload, local)
        return PendingCheckpoint(epoch=epoch, local=local, history=list(state.history))

    def publish(self, pending: PendingCheckpoint) -> str:
        """Upload the state, then the marker (the commit point), then prune; the key of the marker."""
        try:
            stored = self.store.put_file(self.outputs.checkpoint_file(pending.epoch, STATE_FILE), pending.local)
        finally:
            pending.local.unlink(missing_ok=True)
        marker = CheckpointMarker(
            run_id=self.run_id,
            epoch=pending.epoch,
            job_fingerprint=self.fingerprint,
            files=[CheckpointFile(name=STATE_FILE, sha256=stored.sha256, size_bytes=stored.size_bytes)],
            history=pending.history,
            created_at=datetime.now(UTC).isoformat(),
        )
        key = self.outputs.checkpoint_marker(pending.epoch)
        self.store.put_bytes(key, marker.model_dump_json().encode())
        self.prune()
        return key

    def prune(self) -> None:
        for epoch in self.epochs()[self.keep :]:
            # Marker first: a checkpoint without one no longer exists for any reader.
            self.store.delete(self.outputs.checkpoint_marker(epoch))
            for key in self.store.list_keys(self.outputs.checkpoint_prefix(epoch)):
                self.store.delete(key)

    def _load(self, epoch: int) -> tuple[CheckpointMarker, dict[str, Any]]:
        import torch

        key = self.outputs.checkpoint_marker(epoch)
        try:
            marker = CheckpointMarker.model_validate_json(self.store.get_bytes(key))
        except ValidationError as exc:
            raise UnusableCheckpoint(f"its marker is not a checkpoint record ({exc.error_count()} problems)") from None
        if marker.format_version != MARKER_FORMAT_VERSION:
            raise UnusableCheckpoint(f"marker format {marker.format_version}, this trainer reads {MARKER_FORMAT_VERSION}")
        if marker.job_fingerprint != self.fingerprint or marker.run_id != self.run_id:
            raise UnusableCheckpoint("it was made for another job (different inputs, seed or settings)")
        if marker.epoch != epoch or len(marker.history) != epoch:
            raise UnusableCheckpoint(f"its marker describes epoch {marker.epoch} with {len(marker.history)} records")
        state_file = next((f for f in marker.files if f.name == STATE_FILE), None)
        if state_file is None:
            raise UnusableCheckpoint(f"its marker names no {STATE_FILE}")
        local = self.scratch / f"resume-{epoch:04d}.pt"
        try:
            got = self.store.get_file(self.outputs.checkpoint_file(epoch, STATE_FILE), local)  # verifies the sha256
            if got.sha256 != state_file.sha256:
                raise UnusableCheckpoint(f"{STATE_FILE} is not the file its marker names (sha256 {got.sha256[:12]})")
            try:
                # weights_only: tensors, numbers, strings and containers only; never arbitrary objects.
                payload = torch.load(local, map_location="cpu", weights_only=True)
            except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
                raise UnusableCheckpoint(f"{STATE_FILE} does not load as plain tensors: {str(exc).splitlines()[0]}") from None
        finally:
            local.unlink(missing_ok=True)
        if not isinstance(payload, dict):
            raise UnusableCheckpoint(f"{STATE_FILE} holds a {type(payload).__name__}, not a training state")
        return marker, payload

    def resume(self, fresh_state: Callable[[], TrainingState]) -> tuple[TrainingState, ResumeInfo | None]:
        """The newest usable checkpoint restored into a fresh state, or a fresh state from epoch 1."""
        skipped: list[str] = []
        for epoch in self.epochs():
            state = fresh_state()
            try:
                marker, payload = self._load(epoch)
                state.load_payload(payload, marker.history)
            except (UnusableCheckpoint, StoreError, ValueError, KeyError, TypeError, RuntimeError) as exc:
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if isinstance(exc, ObjectNotFound):
                    why = f"a file of it is missing ({why})"
                skipped.append(f"epoch {epoch}: {why}")
                self.report(f"checkpoint of epoch {epoch} is unusable: {why}; trying the one before it")
                continue
            return state, ResumeInfo(
                from_epoch=epoch + 1, checkpoint_key=self.outputs.checkpoint_marker(epoch), unusable_checkpoints=skipped
            )
        return fresh_state(), None


@dataclass
class CheckpointHook:
    """Checkpoints every `every` epochs (and after the last one); an epoch-end hook.

    The loop waits only for the state to be serialised to scratch; the upload, the marker and the
    pruning run in a background thread while the next epoch trains. A new checkpoint (and `wait`, at
    the end of training) first waits for the previous one, so markers appear in epoch order and an
    upload error fails the trainer. A trainer killed mid-upload leaves no marker: that checkpoint
    never existed, and a resume takes the one before it."""

    checkpoints: CheckpointStore
    every: int
    epochs: int
    on_saved: Callable[[str], None] | None = None
    _pending: threading.Thread | None = field(default=None, init=False)
    _error: BaseException | None = field(default=None, init=False)

    def on_epoch_end(self, state: TrainingState, record: EpochRecord) -> StopRecord | None:
        if self.every > 0 and (record.epoch % self.every == 0 or record.epoch == self.epochs):
            self.wait()
            pending = self.checkpoints.snapshot(state)
            self._pending = threading.Thread(target=self._publish, args=(pending,), name="trainyard-checkpoint", daemon=True)
            self._pending.start()
        return None

    def _publish(self, pending: PendingCheckpoint) -> None:
        try:
            key = self.checkpoints.publish(pending)
        except BaseException as exc:  # re-raised in the training thread by wait()
            self._error = exc
            return
        if self.on_saved is not None:
            self.on_saved(key)

    def wait(self) -> None:
        """Until the last checkpoint is stored; raises what its upload raised."""
        if self._pending is not None:
            self._pending.join()
            self._pending = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
