"""Task logs through the REST API: read once, or follow a running task with Airflow's continuation
token (each call returns what was written since the last one)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from steps.lifecycle.run_failure import one_line
from trainyard.client.errors import ClientError
from trainyard.client.records import FINISHED_TASK_STATES, TaskState
from trainyard.client.session import AirflowSession, NotFound

_GROUP_MARKERS = ("::group::", "::endgroup::")
# Following a task that has ended: read until its log has been quiet this long (at most SETTLE_MAX_S).
# A killed task learns it at its next heartbeat (every 5 s by default) and logs its last lines then.
SETTLE_QUIET_S = 10.0
SETTLE_MAX_S = 40.0


def _entry_key(entry: Any) -> tuple[str, str]:
    """What identifies a log entry across reads (a token read and a full read return the same entries)."""
    if isinstance(entry, dict):
        return str(entry.get("timestamp")), str(entry.get("event"))
    return "", str(entry)


def format_entry(entry: Any) -> list[str]:
    """One log entry (Airflow's structured JSON) as text lines: time, level, event, and any exception."""
    if isinstance(entry, str):
        return [entry]
    event = str(entry.get("event", ""))
    if event.startswith(_GROUP_MARKERS):
        return []
    stamp = str(entry.get("timestamp") or "")[11:19] or " " * 8
    lines = [f"{stamp} {str(entry.get('level', '')).upper():<7} {event}".rstrip()]
    for detail in entry.get("error_detail") or []:
        lines.append(f"{'':17}{detail.get('exc_type')}: {one_line(str(detail.get('exc_value', '')))}")
    return lines


def _reporting_error(detail: dict) -> bool:
    """The task runner failing to report a state the API server no longer accepts (a cancelled run's
    task reporting up_for_retry answers 409): logged after the task's own exception, never its cause."""
    return detail.get("exc_type") == "AirflowRuntimeError" and str(detail.get("exc_value", "")).startswith(
        "API_SERVER_ERROR")


def failure_line(entries: list[Any]) -> str | None:
    """Why a task failed, from its log: the last exception it logged (not the runner's failure to
    report it), else its last error event."""
    structured = [e for e in entries if isinstance(e, dict)]
    logged = [details[-1] for e in structured if (details := e.get("error_detail") or [])]
    own = [detail for detail in logged if not _reporting_error(detail)] or logged
    if own:
        last = own[-1]
        return f"{last.get('exc_type')}: {one_line(str(last.get('exc_value', '')))}"
    for entry in reversed(structured):
        if entry.get("level") == "error" and entry.get("event"):
            return one_line(str(entry["event"]))
    return None


class TaskLogs:
    def __init__(self, session: AirflowSession):
        self.session = session

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> TaskState:
        s = self.session
        try:
            ti = s.call(s.task_instances.get_task_instance, dag_id, run_id, task_id)
        except NotFound:
            raise ClientError(f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}") from None
        state = ti.state.value if ti.state is not None else None
        return TaskState(task_id=ti.task_id, state=state, try_number=ti.try_number, started_at=ti.start_date,
                         duration_s=ti.duration)

    def entries(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[Any]:
        page = self._page(dag_id, run_id, task_id, try_number, full_content=True)
        return list(page.get("content") or [])

    def _page(self, dag_id: str, run_id: str, task_id: str, try_number: int, **query: Any) -> dict:
        s = self.session
        return s.call_json(s.task_instances.get_log_without_preload_content, dag_id, run_id, task_id, try_number,
                           accept="application/json", **query)

    def lines(
        self, dag_id: str, run_id: str, task_id: str, *, try_number: int | None = None, follow: bool = False,
        poll_s: float = 2.0,
    ) -> Iterator[str]:
        """The task's log lines; with `follow`, waits for the task to start and streams until it ends."""
        ti = self.task_state(dag_id, run_id, task_id)
        while follow and not ti.started and ti.state not in FINISHED_TASK_STATES:
            time.sleep(poll_s)
            ti = self.task_state(dag_id, run_id, task_id)
        chosen = try_number or ti.try_number
        if chosen < 1:  # skipped, upstream failed, or not started yet (without --follow)
            yield f"({task_id} has not run: {ti.state or 'not scheduled yet'})"
            return
        token: str | None = None
        printed: set[tuple[str, str]] = set()
        while True:
            page = self._page(dag_id, run_id, task_id, chosen, token=token)
            for entry in page.get("content") or []:
                printed.add(_entry_key(entry))
                yield from format_entry(entry)
            token = page.get("continuation_token")
            if not follow:
                return
            ti = self.task_state(dag_id, run_id, task_id)
            if token is None or ti.try_number != chosen or ti.state in FINISHED_TASK_STATES:
                yield from self._settle(dag_id, run_id, task_id, chosen, printed, poll_s)
                return
            time.sleep(poll_s)

    def _settle(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, printed: set[tuple[str, str]], poll_s: float
    ) -> Iterator[str]:
        """After a task's state is final, its process may still be writing: a task marked failed from
        outside (`trainyard cancel`) logs its on_kill and exit only when its next heartbeat tells it.
        Read until the log has been quiet for SETTLE_QUIET_S."""
        now = time.monotonic()
        quiet_since, deadline = now, now + SETTLE_MAX_S
        while now - quiet_since < SETTLE_QUIET_S and now < deadline:
            time.sleep(poll_s)
            new = [e for e in self.entries(dag_id, run_id, task_id, try_number) if _entry_key(e) not in printed]
            now = time.monotonic()
            if new:
                quiet_since = now
            for entry in new:
                printed.add(_entry_key(entry))
                yield from format_entry(entry)
