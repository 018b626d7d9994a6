"""A run's status from both sides: Airflow's run and task states (REST), and the store's records
of the trainer's epochs and of why a step failed. At the end, the register task's XCom says which
version was registered and whether it became champion."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from trainyard.client.errors import ClientError, UnknownRun
from trainyard.client.logs import TaskLogs, failure_line
from trainyard.client.records import FAILED_TASK_STATES, RunOutcome, RunStatus, TaskState
from trainyard.client.session import AirflowSession, NotFound
from trainyard.client.store_readout import StoreReadout

REGISTER_TASK = "register"
PLAN_TASK = "plan"


def find_run(session: AirflowSession, run_id: str, dag_id: str | None = None) -> Any:
    """The run with this id; without a DAG id, searched across every DAG (ids are unique per DAG only)."""
    if dag_id:
        session.require_dag(dag_id)
        try:
            return session.call(session.dag_runs.get_dag_run, dag_id, run_id)
        except NotFound:
            raise UnknownRun(f"DAG {dag_id!r} has no run {run_id!r} on {session.url}") from None
    # The pattern matches substrings ('_' any character): keep exact matches only, and when the
    # page was not all of them, ask each DAG directly.
    page = session.call(session.dag_runs.get_dag_runs, "~", run_id_pattern=run_id, limit=100)
    exact = [run for run in page.dag_runs if run.dag_run_id == run_id]
    if not exact and (page.total_entries or 0) > len(page.dag_runs):
        exact = _ask_every_dag(session, run_id)
    if not exact:
        raise UnknownRun(f"no run {run_id!r} on {session.url} (`trainyard runs` lists recent ones)")
    if len(exact) > 1:
        dags = ", ".join(sorted(run.dag_id for run in exact))
        raise ClientError(f"run id {run_id!r} exists in several DAGs ({dags}); pass --dag")
    return exact[0]


def _ask_every_dag(session: AirflowSession, run_id: str) -> list[Any]:
    found = []
    for dag in session.call(session.dags.get_dags, limit=1000).dags:
        try:
            found.append(session.call(session.dag_runs.get_dag_run, dag.dag_id, run_id))
        except NotFound:
            continue
    return found


def xcom_value(session: AirflowSession, dag_id: str, run_id: str, task_id: str) -> Any | None:
    try:
        entry = session.call(
            session.xcoms.get_xcom_entry, dag_id, task_id, run_id, "return_value", map_index=-1, deserialize=True
        )
    except NotFound:
        return None
    return getattr(entry.actual_instance, "value", None)


def outcome_from_xcom(value: Any) -> RunOutcome | None:
    """The register task's record: RegisteredVersion, or an exact replay's ReproductionRecord."""
    from steps.lifecycle.register import RegisteredVersion
    from steps.lifecycle.replay import ReproductionRecord

    if not isinstance(value, dict):
        return None
    try:
        if "weights_match" in value:
            replay = ReproductionRecord.model_validate({k: v for k, v in value.items() if k != "message"})
            return RunOutcome(model_name=replay.model_name, replayed=replay.replayed,
                              weights_match=replay.weights_match, weights_sha256=replay.actual_weights_sha256)
        registered = RegisteredVersion.model_validate(value)
    except ValidationError:
        return None
    return RunOutcome(model_name=registered.model_name, version=registered.version, champion=registered.champion,
                      weights_sha256=registered.weights_sha256)


def task_states(session: AirflowSession, dag_id: str, run_id: str) -> list[TaskState]:
    """The run's tasks, in the order they started (those not started yet last)."""
    tis = session.call(session.task_instances.get_task_instances, dag_id, run_id, limit=1000).task_instances
    tasks = [
        TaskState(task_id=ti.task_id, state=ti.state.value if ti.state is not None else None,
                  try_number=ti.try_number, started_at=ti.start_date, duration_s=ti.duration)
        for ti in tis
    ]
    return sorted(tasks, key=lambda t: (t.started_at is None, t.started_at or 0))


class RunWatcher:
    """Reads a run's status; remembers what never changes (the planned epochs) between polls."""

    def __init__(self, session: AirflowSession, store: StoreReadout | None = None):
        self.session = session
        self.store = store or StoreReadout()
        self.logs = TaskLogs(session)
        self._epochs_planned: dict[tuple[str, str], int | None] = {}

    def status(self, run_id: str, dag_id: str | None = None) -> RunStatus:
        s = self.session
        run = find_run(s, run_id, dag_id)
        dag_id, state = run.dag_id, run.state.value
        tasks = task_states(s, dag_id, run_id)
        progress, store_note = self.store.progress(dag_id, run_id)
        stored = self.store.run_status(dag_id, run_id) if progress is not None else None
        failures = {}
        for task in tasks:
            if task.state not in FAILED_TASK_STATES:
                continue
            recorded = progress.failures.get(task.task_id) if progress else None
            failures[task.task_id] = recorded.summary if recorded else self._failure_from_log(dag_id, run_id, task)
        outcome = None
        register = next((t for t in tasks if t.task_id == REGISTER_TASK), None)
        if register is not None and register.state == "success":
            outcome = outcome_from_xcom(xcom_value(s, dag_id, run_id, REGISTER_TASK))
        return RunStatus(
            dag_id=dag_id,
            run_id=run_id,
            url=s.run_url(dag_id, run_id),
            state=state,
            logical_date=run.logical_date,
            conf=run.conf or {},
            tasks=tasks,
            epochs=progress.epochs if progress else [],
            epochs_planned=self._planned_epochs(dag_id, run_id, tasks),
            store_note=store_note,
            failures=failures,
            outcome=outcome,
            stored=stored,
        )

    def _planned_epochs(self, dag_id: str, run_id: str, tasks: list[TaskState]) -> int | None:
        key = (dag_id, run_id)
        if key not in self._epochs_planned:
            plan = next((t for t in tasks if t.task_id == PLAN_TASK), None)
            if plan is None or plan.state != "success":
                return None
            value = xcom_value(self.session, dag_id, run_id, PLAN_TASK)
            epochs = (value or {}).get("hyperparameters", {}).get("epochs") if isinstance(value, dict) else None
            self._epochs_planned[key] = int(epochs) if isinstance(epochs, int) else None
        return self._epochs_planned[key]

    def _failure_from_log(self, dag_id: str, run_id: str, task: TaskState) -> str:
        try:
            line = failure_line(self.logs.entries(dag_id, run_id, task.task_id, max(task.try_number, 1)))
        except ClientError:
            line = None
        return f"{task.task_id} failed: {line}" if line else f"{task.task_id} failed (no reason in its log)"

    def watch(self, run_id: str, dag_id: str | None = None, *, poll_s: float = 3.0,
              timeout_s: float | None = None) -> Iterator[RunStatus]:
        """Yield the status whenever it changes, ending with the run's final status."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last = None
        while True:
            current = self.status(run_id, dag_id)
            dag_id = current.dag_id
            fingerprint = (current.state, [(t.task_id, t.state, t.try_number) for t in current.tasks],
                           len(current.epochs), current.store_note, current.outcome,
                           current.stored.training if current.stored else None)
            if fingerprint != last:
                last = fingerprint
                yield current
            if current.finished:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(f"run {run_id!r} still {current.state} after {timeout_s:.0f}s")
            time.sleep(poll_s)
