"""Backfills through the REST API: create one for a date range, watch its runs, and report per
date the model version it registered or, for an exact replay, whether the weights matched.

Which dates a backfill runs is Airflow's answer to a dry run of the same request, asked first;
those dates' runs are the backfill's (a reprocessed date keeps its run id).
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from datetime import time as day_time
from typing import Any

from trainyard.client.errors import ClientError, RequestRefused
from trainyard.client.records import TERMINAL_RUN_STATES, BackfillDate, BackfillReport
from trainyard.client.status import REGISTER_TASK, RunWatcher, outcome_from_xcom, xcom_value

WEIGHTS_MISMATCH_KIND = "weights-mismatch"  # steps/lifecycle/run_failure.py
WEIGHTS_MISMATCH_ERROR = "WeightsMismatch"  # steps/lifecycle/replay.py, as a task log names it


class Backfill:
    def __init__(self, watcher: RunWatcher):
        self.watcher = watcher
        self.session = watcher.session

    def create(
        self, dag_id: str, from_day: date, to_day: date, *, replay: str | None = None, reprocess: str = "none",
        conf: dict[str, Any] | None = None, unpause: bool = False, max_active_runs: int = 1,
    ) -> tuple[Any, list[datetime]]:
        """Create the backfill; returns it and the logical dates it will run."""
        from airflow_client.client.models.backfill_post_body import BackfillPostBody
        from airflow_client.client.models.reprocess_behavior import ReprocessBehavior

        if to_day < from_day:
            raise RequestRefused(f"--to {to_day} is before --from {from_day}")
        s = self.session
        s.require_dag(dag_id, unpaused=True, unpause=unpause)  # a paused DAG's backfill runs never start
        run_conf = dict(conf or {})
        if replay is not None:
            params = s.call(s.dags.get_dag_details, dag_id).params or {}
            if "replay" not in params:
                raise RequestRefused(f"DAG {dag_id!r} has no replay parameter; --replay applies to scheduled retraining DAGs")
            run_conf["replay"] = replay
        body = BackfillPostBody(
            dag_id=dag_id,
            from_date=datetime.combine(from_day, day_time.min, tzinfo=UTC),
            to_date=datetime.combine(to_day, day_time.max, tzinfo=UTC),
            reprocess_behavior=ReprocessBehavior(reprocess),
            max_active_runs=max_active_runs,
            dag_run_conf=run_conf,
        )
        planned = s.call(s.backfills.create_backfill_dry_run, body).backfills
        dates = sorted(p.logical_date for p in planned if p.logical_date is not None)
        if not dates:
            raise RequestRefused(
                f"a backfill of {dag_id!r} from {from_day} to {to_day} would run nothing: the schedule has no date "
                f"there, or every date already has a run (--reprocess completed runs them again)"
            )
        return s.call(s.backfills.create_backfill, body), dates

    def _runs(self, backfill_id: int, dates: list[datetime] | None) -> tuple[Any, list[Any]]:
        s = self.session
        backfill = s.call(s.backfills.get_backfill, backfill_id)
        runs = s.call(
            s.dag_runs.get_dag_runs, backfill.dag_id, logical_date_gte=backfill.from_date,
            logical_date_lte=backfill.to_date, order_by=["logical_date"], limit=1000,
        ).dag_runs
        wanted = set(dates) if dates is not None else None
        return backfill, [r for r in runs if r.logical_date is not None and (wanted is None or r.logical_date in wanted)]

    def report(self, backfill_id: int, dates: list[datetime] | None = None) -> BackfillReport:
        """Per date: its run's state and what it registered (or why it failed)."""
        backfill, runs = self._runs(backfill_id, dates)
        return BackfillReport(backfill_id=backfill.id, dag_id=backfill.dag_id, completed=backfill.completed_at is not None,
                              dates=[self._date_row(backfill.dag_id, run) for run in runs])

    def _date_row(self, dag_id: str, run: Any) -> BackfillDate:
        state = run.state.value
        row = BackfillDate(logical_date=run.logical_date, run_id=run.dag_run_id, state=state)
        if state == "success":
            outcome = outcome_from_xcom(xcom_value(self.session, dag_id, run.dag_run_id, REGISTER_TASK))
            return row.model_copy(update={"outcome": outcome, "weights_mismatch": bool(outcome and outcome.weights_match is False)})
        if state == "failed":
            status = self.watcher.status(run.dag_run_id, dag_id)
            progress, _ = self.watcher.store.progress(dag_id, run.dag_run_id)
            recorded = progress.failures.get(REGISTER_TASK) if progress else None
            failure = "; ".join(status.failures.values()) or "failed"
            mismatch = (recorded is not None and recorded.kind == WEIGHTS_MISMATCH_KIND) or WEIGHTS_MISMATCH_ERROR in failure
            return row.model_copy(update={"failure": failure, "weights_mismatch": mismatch})
        return row

    def watch(self, backfill_id: int, dates: list[datetime] | None = None, *, poll_s: float = 5.0,
              timeout_s: float | None = None) -> Iterator[BackfillReport]:
        """Yield the report whenever a date's state changes; the last one is complete."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last = None
        while True:
            report = self._states(backfill_id, dates)
            fingerprint = [(d.day, d.state) for d in report.dates]
            done = report.completed and all(d.state in TERMINAL_RUN_STATES for d in report.dates)
            if done:
                yield self.report(backfill_id, dates)
                return
            if fingerprint != last:
                last = fingerprint
                yield report
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(f"backfill {backfill_id} not complete after {timeout_s:.0f}s")
            time.sleep(poll_s)

    def _states(self, backfill_id: int, dates: list[datetime] | None) -> BackfillReport:
        """Run states only (cheap, for polling); outcomes come with the final report."""
        backfill, runs = self._runs(backfill_id, dates)
        rows = [BackfillDate(logical_date=r.logical_date, run_id=r.dag_run_id, state=r.state.value) for r in runs]
        return BackfillReport(backfill_id=backfill.id, dag_id=backfill.dag_id, completed=backfill.completed_at is not None,
                              dates=rows)
