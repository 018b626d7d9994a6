"""The executor interface: same job in, same TrainerResult out, whatever runs the trainer."""
from __future__ import annotations

from typing import Protocol

from steps.images.trainer_image import TrainerImage
from steps.store import StoreSettings
from steps.training.contract import TrainerResult, TrainingJob


class TrainerFailed(RuntimeError):
    """The trainer exited non-zero; the message carries its last log lines."""


class TrainerStopped(TrainerFailed):
    """The trainer was stopped on purpose because its task was killed; not the trainer's fault."""

    failure_kind = "stopped"


class TrainerExecutor(Protocol):
    kind: str

    def run(self, job: TrainingJob, image: TrainerImage, store: StoreSettings, *, deadline_s: int) -> TrainerResult:
        ...
