"""A small client for Airflow 3's REST API v2, for tests that drive a real Airflow.

Only what the e2e tests need: log in (POST /auth/token), unpause, trigger, wait,
task states, XComs, backfills. Waits poll; they raise with the run's task states and
the tail of a failed task's log, so a red test says why without opening Airflow.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import requests

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
GET_ATTEMPTS = 4


class AirflowApiError(RuntimeError):
    """An API call failed or a wait ran out; the message carries Airflow's answer."""


def _iso(moment: datetime | str | None) -> str | None:
    if moment is None or isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no timezone; Airflow needs aware datetimes")
    return moment.isoformat()


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, request_timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.request_timeout_s = request_timeout_s
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self._token(username, password)}"

    def _token(self, username: str, password: str) -> str:
        resp = requests.post(
            f"{self.base_url}/auth/token",
            json={"username": username, "password": password},
            timeout=self.request_timeout_s,
        )
        if resp.status_code != 201:
            # Not echoing the request: it holds the password.
            raise AirflowApiError(f"login as {username!r} failed: HTTP {resp.status_code} {resp.text[:200]}")
        return resp.json()["access_token"]

    # -- plumbing ------------------------------------------------------------
    def request(self, method: str, path: str, *, expect: Iterable[int] = (200,), **kwargs: Any) -> Any:
        # A single-worker api-server on a loaded 2-core machine sometimes answers late or drops a
        # connection; reads are safe to repeat, writes are not.
        attempts = GET_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                resp = self.session.request(method, f"{self.base_url}{path}", timeout=self.request_timeout_s, **kwargs)
                break
            except (requests.Timeout, requests.ConnectionError):
                if attempt == attempts:
                    raise
                time.sleep(2 * attempt)
        if resp.status_code not in tuple(expect):
            raise AirflowApiError(f"{method} {path} -> HTTP {resp.status_code}: {resp.text[:1000]}")
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", f"/api/v2{path}", params=params or None)

    # -- DAGs ----------------------------------------------------------------
    def get_dag(self, dag_id: str) -> dict:
        return self.get(f"/dags/{dag_id}")

    def import_errors(self) -> list[dict]:
        return self.get("/importErrors")["import_errors"]

    def wait_for_dag(self, dag_id: str, timeout_s: float = 600.0) -> dict:
        """Wait until the dag-processor has parsed and serialized `dag_id`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                resp = self.session.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=self.request_timeout_s)
                if resp.status_code == 200:
                    # The DAG row can exist a moment before its serialized version does;
                    # triggering needs the latter.
                    details = self.session.get(
                        f"{self.base_url}/api/v2/dags/{dag_id}/details", timeout=self.request_timeout_s
                    )
                    if details.status_code == 200:
                        return resp.json()
            except (requests.Timeout, requests.ConnectionError):
                pass  # a late answer on a loaded machine: the deadline below decides
            if time.monotonic() > deadline:
                errors = [f"{e.get('filename')}: {e.get('stack_trace', '')[-500:]}" for e in self.import_errors()]
                raise AirflowApiError(f"DAG {dag_id!r} not parsed after {timeout_s:.0f}s; import errors: {errors}")
            time.sleep(1)

    def set_paused(self, dag_id: str, is_paused: bool) -> dict:
        return self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": is_paused})

    def unpause(self, dag_id: str) -> dict:
        return self.set_paused(dag_id, False)

    # -- DAG runs ------------------------------------------------------------
    def trigger(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        *,
        logical_date: datetime | str | None = None,
        run_id: str | None = None,
        note: str | None = None,
    ) -> dict:
        body: dict[str, Any] = {"logical_date": _iso(logical_date), "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def asset_events(self, **filters: Any) -> list[dict]:
        """Asset events, newest first (filters: source_dag_id, source_run_id, asset_id, ...)."""
        filters.setdefault("limit", 100)
        filters.setdefault("order_by", "-timestamp")
        return self.get("/assets/events", **filters)["asset_events"]

    def wait_for_triggered_run(self, event_id: int, dag_id: str, timeout_s: float = 600.0, poll_s: float = 2.0) -> str:
        """The run of `dag_id` the scheduler created from asset event `event_id`."""
        deadline = time.monotonic() + timeout_s
        while True:
            event = next((e for e in self.asset_events() if e["id"] == event_id), None)
            runs = [r["run_id"] for r in (event or {}).get("created_dagruns", []) if r["dag_id"] == dag_id]
            if runs:
                return runs[0]
            if time.monotonic() > deadline:
                raise AirflowApiError(f"no {dag_id} run created from asset event {event_id} after {timeout_s:.0f}s: {event}")
            time.sleep(poll_s)

    def get_run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def list_runs(self, dag_id: str, **filters: Any) -> list[dict]:
        filters.setdefault("limit", 100)
        filters.setdefault("order_by", "logical_date")
        return self.get(f"/dags/{dag_id}/dagRuns", **filters)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        resp = self.session.get(
            f"{self.base_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
            timeout=self.request_timeout_s,
        )
        if not resp.ok:
            return f"(log unavailable: HTTP {resp.status_code})"
        lines = []
        for entry in resp.json().get("content", []):
            if isinstance(entry, str):
                lines.append(entry)
                continue
            # Structured entries: the event, plus the exception text when the task raised.
            lines.append(str(entry.get("event", "")))
            for detail in entry.get("error_detail") or []:
                lines.append(f"{detail.get('exc_type')}: {detail.get('exc_value')}")
        return "\n".join(lines)

    def explain_run(self, dag_id: str, run_id: str, log_chars: int = 3000) -> str:
        """Task states plus the tail of each failed task's log: the message of a red test."""
        lines = [f"run {dag_id}/{run_id}:"]
        for ti in self.task_instances(dag_id, run_id):
            lines.append(f"  {ti['task_id']}: {ti['state']}")
            if ti["state"] in {"failed", "upstream_failed", "up_for_retry"} and ti.get("try_number"):
                log = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"])
                lines.append("    log tail: " + log[-log_chars:].replace("\n", "\n    "))
        return "\n".join(lines)

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 300.0, poll_s: float = 2.0) -> dict:
        """Wait for a terminal state and return the run (the caller asserts which state)."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.get_run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise AirflowApiError(
                    f"run still {run['state']!r} after {timeout_s:.0f}s\n{self.explain_run(dag_id, run_id)}"
                )
            time.sleep(poll_s)

    def run_to_success(self, dag_id: str, conf: Mapping[str, Any] | None = None, timeout_s: float = 300.0, **kw: Any) -> dict:
        """Trigger, wait, and fail loudly (with task logs) unless the run succeeded."""
        run = self.trigger(dag_id, conf, **kw)
        done = self.wait_for_run(dag_id, run["dag_run_id"], timeout_s=timeout_s)
        if done["state"] != "success":
            raise AirflowApiError(f"run ended {done['state']!r}\n{self.explain_run(dag_id, run['dag_run_id'])}")
        return done

    # -- XComs ---------------------------------------------------------------
    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """The XCom's value as the JSON the task pushed (dicts stay dicts)."""
        entry = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            map_index=map_index,
            deserialize="true",
        )
        return entry["value"]

    # -- backfills -----------------------------------------------------------
    def create_backfill(
        self,
        dag_id: str,
        from_date: datetime | str,
        to_date: datetime | str,
        *,
        reprocess_behavior: str = "none",
        conf: Mapping[str, Any] | None = None,
        max_active_runs: int = 3,
        run_backwards: bool = False,
    ) -> dict:
        if reprocess_behavior not in {"none", "failed", "completed"}:
            raise ValueError(f"reprocess_behavior must be none, failed or completed, not {reprocess_behavior!r}")
        body = {
            "dag_id": dag_id,
            "from_date": _iso(from_date),
            "to_date": _iso(to_date),
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": max_active_runs,
            "run_backwards": run_backwards,
            "dag_run_conf": dict(conf) if conf is not None else None,
        }
        return self.request("POST", "/api/v2/backfills", json=body)

    def get_backfill(self, backfill_id: int) -> dict:
        return self.get(f"/backfills/{backfill_id}")

    def backfill_runs(self, dag_id: str, from_date: datetime | str, to_date: datetime | str) -> list[dict]:
        """Backfill runs whose logical date lies in [from_date, to_date], oldest first."""
        return self.list_runs(
            dag_id,
            run_type="backfill",
            logical_date_gte=_iso(from_date),
            logical_date_lte=_iso(to_date),
        )

    def wait_for_backfill(self, backfill_id: int, timeout_s: float = 600.0, poll_s: float = 2.0) -> dict:
        """Wait until Airflow marks the backfill completed (every run terminal); return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            backfill = self.get_backfill(backfill_id)
            if backfill["completed_at"] is not None:
                return backfill
            if time.monotonic() > deadline:
                runs = self.backfill_runs(backfill["dag_id"], backfill["from_date"], backfill["to_date"])
                states = {r["dag_run_id"]: r["state"] for r in runs}
                raise AirflowApiError(f"backfill {backfill_id} not completed after {timeout_s:.0f}s; runs: {states}")
            time.sleep(poll_s)
