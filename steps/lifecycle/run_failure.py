"""Why a run's step failed, in one readable line, kept beside the run so the CLI, `trainyard status`
and lineage can say it without anyone reading a task log: runs/<run_key>/failures/<step>.json.

An exception may carry its own `failure_kind` and `retryable` attributes; otherwise its type decides.
The record of a step is the latest failed try's; a step that later succeeded leaves it behind, so
readers consult it only for steps that ended failed.
"""
from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from steps.store import ArtifactStore, IntegrityError, ObjectNotFound, StoreUnavailable
from steps.store.run_layout import RunLayout

REASON_MAX_CHARS = 500

#: Failure kinds, and whether another try of the same step could succeed.
RETRYABLE_BY_KIND = {
    "bad-request": False,  # the request itself is wrong: unknown name, out-of-bounds parameter
    "validation": False,  # the data broke its schema's rules
    "integrity": False,  # stored bytes do not match their recorded sha256
    "weights-mismatch": False,  # an exact replay did not reproduce its weights
    "diverged": False,  # NaN or infinite loss: a retry would only repeat it
    "store": True,  # the store could not be reached
    "deadline": True,  # the trainer ran past its deadline
    "stalled": True,  # the trainer stopped making progress
    "oom-killed": True,
    "evicted": True,
    "image-pull": True,
    "rendezvous": True,  # the nodes of a multi-node run never met (one not scheduled, not reachable)
    "quota-exceeded": True,  # the namespace's ResourceQuota refused the pod (unless it asks more than the whole)
    "trainer-exit": True,  # the trainer exited non-zero
    "stopped": True,  # the task was killed (a cancelled run, a worker shutdown) and stopped its trainer
    "error": True,  # anything else
}

# Checked in order: the first matching type name in the exception's MRO decides.
_KIND_BY_TYPE_NAME = {
    "BadRequest": "bad-request",
    "UnknownName": "bad-request",
    "InvalidName": "bad-request",
    "PlacementError": "bad-request",
    "UnpinnedImage": "bad-request",
    "ReplayRefused": "bad-request",
    "ShapeUnsupported": "bad-request",
    "ValidationFailed": "validation",
    "DatasetReadError": "validation",
    "SnapshotError": "validation",
    "WeightsMismatch": "weights-mismatch",
    "IntegrityError": "integrity",
    "StoreUnavailable": "store",
    "TrainerFailed": "trainer-exit",
}


class RunFailure(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_key: str
    step: str  # the task that failed: plan, snapshot, validate, train, evaluate, register, ...
    kind: str  # a key of RETRYABLE_BY_KIND
    reason: str  # one line, in the step's own words
    retryable: bool
    try_number: int | None = None
    recorded_at: str

    @property
    def summary(self) -> str:
        return f"{self.step} failed ({self.kind}): {self.reason}"


def failure_kind(exc: BaseException) -> str:
    own = getattr(exc, "failure_kind", None)
    if isinstance(own, str) and own in RETRYABLE_BY_KIND:
        return own
    for cls in type(exc).__mro__:
        if cls.__name__ in _KIND_BY_TYPE_NAME:
            return _KIND_BY_TYPE_NAME[cls.__name__]
    return "error"


def one_line(text: str) -> str:
    """The first non-empty line, trimmed: what a person reads first. A first line that ends in ':'
    announces a list (a validation failure's problems), so the list follows it on the same line."""
    lines = [part.strip() for part in text.splitlines() if part.strip()]
    line = lines[0] if lines else ""
    if line.endswith(":") and len(lines) > 1:
        line = f"{line} " + "; ".join(item.removeprefix("- ") for item in lines[1:])
    return line if len(line) <= REASON_MAX_CHARS else line[: REASON_MAX_CHARS - 3] + "..."


def is_retryable(exc: BaseException) -> bool:
    """Whether another try of the same step could succeed: the exception's own say, else its kind's."""
    own = getattr(exc, "retryable", None)
    return own if isinstance(own, bool) else RETRYABLE_BY_KIND[failure_kind(exc)]


def failure_from_exception(run_key: str, step: str, exc: BaseException, *, try_number: int | None = None) -> RunFailure:
    kind = failure_kind(exc)
    return RunFailure(
        run_key=run_key,
        step=step,
        kind=kind,
        reason=one_line(str(exc)) or type(exc).__name__,
        retryable=is_retryable(exc),
        try_number=try_number,
        recorded_at=datetime.now(UTC).isoformat(),
    )


def record_failure(store: ArtifactStore, failure: RunFailure) -> str:
    key = RunLayout(failure.run_key).failure(failure.step)
    store.put_bytes(key, failure.model_dump_json(indent=2).encode())
    return key


def read_failures(store: ArtifactStore, run_key: str) -> dict[str, RunFailure]:
    """step -> its latest recorded failure (steps that never failed are absent)."""
    found = {}
    for key in store.list_keys(RunLayout(run_key).failures_prefix):
        try:
            failure = RunFailure.model_validate_json(store.get_bytes(key))
        except (ObjectNotFound, IntegrityError, StoreUnavailable, ValueError):
            continue  # a reader of failures must not fail on one unreadable record
        found[failure.step] = failure
    return found
