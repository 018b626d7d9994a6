"""The executor interface: same job in, same TrainerResult out, whatever runs the trainer."""
from __future__ import annotations

from typing import Protocol

from steps.images.trainer_image import TrainerImage
from steps.store import StoreSettings
from steps.training.contract import TrainerResult, TrainingJob
from steps.training.shape import MAX_PROCS_PER_NODE, TrainingShape


class TrainerFailed(RuntimeError):
    """The trainer exited non-zero; the message's first line says why, then its last log lines.

    `failure_kind` (steps/lifecycle/run_failure.py) tells a diverged run, which is never retried,
    from a stalled, killed or timed-out one, which may be."""

    def __init__(self, message: str, *, failure_kind: str = "trainer-exit") -> None:
        super().__init__(message)
        self.failure_kind = failure_kind


class TrainerStopped(TrainerFailed):
    """The trainer was stopped on purpose because its task was killed; not the trainer's fault."""

    def __init__(self, message: str) -> None:
        super().__init__(message, failure_kind="stopped")


#: Executors that can start one trainer on several machines (nodes); every executor runs several processes.
MULTI_NODE_EXECUTORS = ("container", "kubernetes")


class ShapeUnsupported(ValueError):
    """The executor cannot run a run of this shape (nodes × procs_per_node)."""


def refuse_unsupported_shape(executor: str, shape: TrainingShape) -> None:
    if shape.nodes > 1 and executor not in MULTI_NODE_EXECUTORS:
        one_node = f" (or nodes=1, procs_per_node={shape.world_size})" if shape.world_size <= MAX_PROCS_PER_NODE else ""
        raise ShapeUnsupported(
            f"nodes={shape.nodes}: the {executor} executor runs a trainer on this one machine; a {shape} run needs "
            f"the {' or '.join(MULTI_NODE_EXECUTORS)} executor{one_node}"
        )


class TrainerExecutor(Protocol):
    kind: str

    def run(self, job: TrainingJob, image: TrainerImage, store: StoreSettings, *, deadline_s: int) -> TrainerResult:
        ...
