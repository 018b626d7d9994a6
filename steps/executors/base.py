"""The executor interface: same job in, same TrainerResult out, whatever runs the trainer."""
from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from steps.contract import TrainerResult, TrainingJob
from steps.store import StoreSettings


class TrainerImage(BaseModel):
    """What ran the trainer. Exactly one of image_digest / code_sha256 pins it."""

    model_config = ConfigDict(frozen=True)

    algorithm: str
    image_reference: str  # repo:tag as registered
    image_digest: str | None = None  # sha256:... (container and Kubernetes executors)
    code_sha256: str | None = None  # embedded subprocess executor: hash of the trainer's code
    entrypoint: str = ""

    @property
    def pinned_reference(self) -> str:
        if self.image_digest:
            repository = self.image_reference.rsplit("@", 1)[0]
            last = repository.rsplit("/", 1)[-1]
            if ":" in last:
                repository = repository[: repository.rfind(":")]
            return f"{repository}@{self.image_digest}"
        return f"code:{self.code_sha256}"


class TrainerFailed(RuntimeError):
    """The trainer exited non-zero; the message carries its last log lines."""


class TrainerExecutor(Protocol):
    kind: str

    def run(self, job: TrainingJob, image: TrainerImage, store: StoreSettings, *, deadline_s: int) -> TrainerResult:
        ...
