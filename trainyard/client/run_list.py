"""`trainyard runs`: recent runs of Trainyard's DAGs (those tagged `trainyard`), newest first.

A run's dataset and algorithm are its conf's, or else its DAG's Param defaults (a scheduled
retraining DAG trains one fixed dataset and never gets them in its conf).
"""
from __future__ import annotations

from typing import Any

from trainyard.client.records import RunSummary
from trainyard.client.session import AirflowSession

TRAINYARD_TAG = "trainyard"


def _param_default(params: dict[str, Any] | None, name: str) -> str | None:
    value = ((params or {}).get(name) or {}).get("value")
    return value if isinstance(value, str) else None


def list_runs(
    session: AirflowSession, *, dag_id: str | None = None, dataset: str | None = None, state: str | None = None,
    limit: int = 20,
) -> list[RunSummary]:
    s = session
    if dag_id:
        s.require_dag(dag_id)
        dag_ids = [dag_id]
    else:
        dag_ids = [d.dag_id for d in s.call(s.dags.get_dags, tags=[TRAINYARD_TAG], limit=100).dags]
    found: list[RunSummary] = []
    for dag in dag_ids:
        params = s.call(s.dags.get_dag_details, dag).params
        defaults = {name: _param_default(params, name) for name in ("dataset", "algorithm")}
        if dataset and "dataset" not in (params or {}):
            continue  # a DAG without datasets (e.g. dataset_snapshots' own runs)
        # Filtering by dataset happens here, so ask for more than `limit` when it applies.
        page = s.call(s.dag_runs.get_dag_runs, dag, state=[state] if state else None, order_by=["-run_after"],
                      limit=limit * 5 if dataset else limit).dag_runs
        for run in page:
            conf = run.conf or {}
            summary = RunSummary(
                dag_id=run.dag_id,
                run_id=run.dag_run_id,
                state=run.state.value,
                run_type=run.run_type.value,
                dataset=conf.get("dataset") or defaults["dataset"],
                algorithm=conf.get("algorithm") or defaults["algorithm"],
                run_after=run.run_after,
                started_at=run.start_date,
                duration_s=run.duration,
            )
            if dataset is None or summary.dataset == dataset:
                found.append(summary)
    found.sort(key=lambda r: r.run_after, reverse=True)
    return found[:limit]
