"""The typed records the client hands back (to the CLI and to notebooks)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from steps.lifecycle.run_progress import EpochRecord
from steps.lifecycle.run_status import RunStatus as StoredRunStatus

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
FAILED_TASK_STATES = frozenset({"failed"})
RETRY_TASK_STATES = frozenset({"up_for_retry"})  # failed, and Airflow will try again
# Task states that will not change any more.
FINISHED_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


class SubmittedRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    dag_id: str
    run_id: str
    url: str  # the run's page in Airflow's UI
    conf: dict[str, Any]
    state: str


class TaskState(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    state: str | None  # None: not scheduled yet
    try_number: int
    started_at: datetime | None = None
    duration_s: float | None = None

    @property
    def started(self) -> bool:
        return self.try_number > 0 and self.state not in (None, "scheduled", "queued")


class RunOutcome(BaseModel):
    """What the register task made of a run (its XCom): a new version, or an exact replay's verdict."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: int | None = None
    champion: bool | None = None
    weights_sha256: str | None = None
    replayed: str | None = None  # MODEL@VERSION an exact replay reproduced
    weights_match: bool | None = None

    @property
    def summary(self) -> str:
        if self.replayed:
            verdict = "weights match" if self.weights_match else "weights DO NOT match"
            return f"replayed {self.replayed} exactly: {verdict} ({(self.weights_sha256 or '')[:12]})"
        return f"registered {self.model_name}@{self.version} (champion: {'yes' if self.champion else 'no'})"


class RunStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    dag_id: str
    run_id: str
    url: str
    state: str
    logical_date: datetime | None = None
    conf: dict[str, Any] = {}
    tasks: list[TaskState] = []
    epochs: list[EpochRecord] = []  # the trainer's epochs so far, from the store
    epochs_planned: int | None = None
    store_note: str | None = None  # why the store's records could not be read from here
    failures: dict[str, str] = {}  # task -> why it failed, one line
    outcome: RunOutcome | None = None
    # What the run's steps stored: training progress, newest checkpoint, resume, each failure's kind.
    stored: StoredRunStatus | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_RUN_STATES

    def tasks_in(self, states: frozenset[str]) -> list[str]:
        return [t.task_id for t in self.tasks if t.state in states]

    def task(self, task_id: str) -> TaskState | None:
        return next((t for t in self.tasks if t.task_id == task_id), None)


class RunSummary(BaseModel):
    """One line of `trainyard runs`."""

    model_config = ConfigDict(frozen=True)

    dag_id: str
    run_id: str
    state: str
    run_type: str
    dataset: str | None
    algorithm: str | None
    run_after: datetime
    started_at: datetime | None = None
    duration_s: float | None = None


class CancelResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    dag_id: str
    run_id: str
    state_before: str
    stopped_tasks: list[str]  # tasks that were running and that Airflow now kills
    trainer_stopped: str | None = None  # the train step's own record that its trainer stopped
    note: str | None = None  # why stopping could not be confirmed


class BackfillDate(BaseModel):
    """One logical date of a backfill, once it has run."""

    model_config = ConfigDict(frozen=True)

    logical_date: datetime
    run_id: str
    state: str
    outcome: RunOutcome | None = None
    failure: str | None = None
    weights_mismatch: bool = False

    @property
    def day(self) -> str:
        return self.logical_date.date().isoformat()


class BackfillReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    backfill_id: int
    dag_id: str
    completed: bool
    dates: list[BackfillDate]
