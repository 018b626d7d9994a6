"""The client's verbs in one object, for notebooks and for the `trainyard` CLI:

    client = trainyard.client.connect("http://127.0.0.1:8080")   # credentials: env or a prompt
    run = client.submit(dataset="digits", algorithm="digits-cnn", epochs=2)
    for status in client.watch(run.run_id): ...

Every method raises a ClientError (or the plan's BadRequest for a refused parameter) whose
message is one line.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from trainyard.client.backfill import Backfill
from trainyard.client.cancel import cancel_run
from trainyard.client.logs import TaskLogs
from trainyard.client.records import BackfillReport, CancelResult, RunStatus, RunSummary, SubmittedRun
from trainyard.client.run_list import list_runs
from trainyard.client.session import AirflowSession
from trainyard.client.status import RunWatcher, find_run, task_states
from trainyard.client.store_readout import StoreReadout
from trainyard.client.submit import TRAINING_DAG, check_conf, new_run_id


class TrainyardClient:
    def __init__(self, session: AirflowSession, store: StoreReadout | None = None):
        self.session = session
        self.watcher = RunWatcher(session, store)
        self._logs = TaskLogs(session)
        self._backfills = Backfill(self.watcher)

    @property
    def url(self) -> str:
        return self.session.url

    # -- submit --------------------------------------------------------------
    def submit(
        self, dataset: str, algorithm: str, *, model_name: str | None = None, epochs: int | None = None,
        learning_rate: float | None = None, batch_size: int | None = None, seed: int | None = None,
        unpause: bool = False, run_id: str | None = None, **extra: Any,
    ) -> SubmittedRun:
        """Trigger training_pipeline; parameters left out take the DAG's defaults."""
        conf = {"dataset": dataset, "algorithm": algorithm, "model_name": model_name, "epochs": epochs,
                "learning_rate": learning_rate, "batch_size": batch_size, "seed": seed, **extra}
        return self.submit_run(TRAINING_DAG, {k: v for k, v in conf.items() if v is not None},
                               run_id=run_id, unpause=unpause)

    def submit_run(
        self, dag_id: str, conf: dict[str, Any], *, run_id: str | None = None, unpause: bool = False,
        note: str | None = None,
    ) -> SubmittedRun:
        """Trigger any DAG with `conf`, checked locally first (submit.LOCAL_CHECKS)."""
        from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

        check_conf(dag_id, conf)
        s = self.session
        s.require_dag(dag_id, unpaused=True, unpause=unpause)
        body = TriggerDAGRunPostBody(dag_run_id=run_id or new_run_id(), conf=conf, logical_date=None, note=note)
        run = s.call(s.dag_runs.trigger_dag_run, dag_id, body)
        return SubmittedRun(dag_id=dag_id, run_id=run.dag_run_id, url=s.run_url(dag_id, run.dag_run_id),
                            conf=run.conf or {}, state=run.state.value)

    # -- watch ---------------------------------------------------------------
    def status(self, run_id: str, *, dag_id: str | None = None) -> RunStatus:
        return self.watcher.status(run_id, dag_id)

    def watch(self, run_id: str, *, dag_id: str | None = None, poll_s: float = 3.0,
              timeout_s: float | None = None) -> Iterator[RunStatus]:
        """The run's status each time it changes; the last one is final (success or failed)."""
        return self.watcher.watch(run_id, dag_id, poll_s=poll_s, timeout_s=timeout_s)

    def logs(self, run_id: str, task: str | None = None, *, dag_id: str | None = None, try_number: int | None = None,
             follow: bool = False, poll_s: float = 2.0) -> Iterator[str]:
        """One task's log lines; without `task`, every task's that has started, in order, each under a header."""
        run = find_run(self.session, run_id, dag_id)
        if task:
            yield from self._logs.lines(run.dag_id, run_id, task, try_number=try_number, follow=follow, poll_s=poll_s)
            return
        shown: set[str] = set()
        while True:
            for state in task_states(self.session, run.dag_id, run_id):
                if state.started and state.task_id not in shown:
                    shown.add(state.task_id)
                    yield f"=== {state.task_id} (try {state.try_number}) ==="
                    yield from self._logs.lines(run.dag_id, run_id, state.task_id, follow=follow, poll_s=poll_s)
            if not follow:
                return
            current = find_run(self.session, run_id, run.dag_id)
            started = {t.task_id for t in task_states(self.session, run.dag_id, run_id) if t.started}
            if current.state.value in ("success", "failed") and started <= shown:
                return
            time.sleep(poll_s)

    # -- act -----------------------------------------------------------------
    def cancel(self, run_id: str, *, dag_id: str | None = None, confirm_timeout_s: float = 90.0) -> CancelResult:
        """Mark the run failed; Airflow kills its running tasks, and a running trainer is stopped."""
        return cancel_run(self.watcher, run_id, dag_id, confirm_timeout_s=confirm_timeout_s)

    def runs(self, *, dataset: str | None = None, state: str | None = None, dag_id: str | None = None,
             limit: int = 20) -> list[RunSummary]:
        return list_runs(self.session, dag_id=dag_id, dataset=dataset, state=state, limit=limit)

    def backfill(
        self, dag_id: str, from_day: date, to_day: date, *, replay: str | None = None, reprocess: str = "none",
        conf: dict[str, Any] | None = None, unpause: bool = False,
    ) -> tuple[int, list[datetime]]:
        """Create a backfill; returns its id and the logical dates it will run."""
        check_conf(dag_id, conf or {})
        backfill, dates = self._backfills.create(dag_id, from_day, to_day, replay=replay, reprocess=reprocess,
                                                 conf=conf, unpause=unpause)
        return backfill.id, dates

    def watch_backfill(self, backfill_id: int, dates: list[datetime] | None = None, *, poll_s: float = 5.0,
                       timeout_s: float | None = None) -> Iterator[BackfillReport]:
        """The backfill's dates each time one changes state; the last report has each date's outcome."""
        return self._backfills.watch(backfill_id, dates, poll_s=poll_s, timeout_s=timeout_s)

    def backfill_report(self, backfill_id: int, dates: list[datetime] | None = None) -> BackfillReport:
        return self._backfills.report(backfill_id, dates)
