"""Backfills of scheduled_retraining on a real Airflow: the first pass registers
historical versions for three past dates, a reprocess of the same range replays each
one exactly and must report a matching weights hash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.e2e.airflow_api import AirflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.minio]

DAG_ID = "scheduled_retraining"
# The demo digits dataset ships partitions dt=2026-01-05, -12 and -19; the DAG runs
# Mondays 03:00 UTC, so this range holds exactly those three dates.
FROM_DATE = datetime(2026, 1, 5, tzinfo=UTC)
TO_DATE = datetime(2026, 1, 19, 23, 59, tzinfo=UTC)
DATES = ["2026-01-05", "2026-01-12", "2026-01-19"]
# One epoch keeps six real trainings within the tier's budget; replays reuse it from the manifest.
CONF = {"epochs": 1}
BACKFILL_TIMEOUT_S = 1800


def _runs_by_date(api: AirflowClient) -> dict[str, dict]:
    return {r["logical_date"][:10]: r for r in api.backfill_runs(DAG_ID, FROM_DATE, TO_DATE)}


def test_backfill_registers_three_historical_versions_and_reprocess_reproduces_each_weights_hash(
    api: AirflowClient,
) -> None:
    api.wait_for_dag(DAG_ID)
    api.unpause(DAG_ID)  # queued backfill runs only start on an unpaused DAG

    api.wait_for_backfill(api.create_backfill(DAG_ID, FROM_DATE, TO_DATE, conf=CONF)["id"], timeout_s=BACKFILL_TIMEOUT_S)

    first = _runs_by_date(api)
    assert sorted(first) == DATES
    for run in first.values():
        assert run["state"] == "success", api.explain_run(DAG_ID, run["dag_run_id"])
    registered = {day: api.xcom(DAG_ID, run["dag_run_id"], "register") for day, run in first.items()}
    plans = {day: api.xcom(DAG_ID, run["dag_run_id"], "plan") for day, run in first.items()}
    for day in DATES:
        assert plans[day]["as_of"] == day, "a past date must see only the partitions up to that date"
        assert plans[day]["historical"] is True
        assert registered[day]["champion"] is False, "a backfill never moves the champion"
    assert len({r["weights_sha256"] for r in registered.values()}) == 3, "each date trained on its own data"

    api.wait_for_backfill(
        api.create_backfill(DAG_ID, FROM_DATE, TO_DATE, conf=CONF, reprocess_behavior="completed")["id"],
        timeout_s=BACKFILL_TIMEOUT_S,
    )

    replayed = _runs_by_date(api)
    assert sorted(replayed) == DATES
    for day, run in replayed.items():
        assert run["state"] == "success", api.explain_run(DAG_ID, run["dag_run_id"])
        assert run["end_date"] > first[day]["end_date"], f"{day} was not re-run"
        record = api.xcom(DAG_ID, run["dag_run_id"], "register")
        assert record["weights_match"] is True, record
        assert record["actual_weights_sha256"] == registered[day]["weights_sha256"]
        assert record["message"].startswith("reproduced: weights hash matches")
        assert record["replayed"] == f"{registered[day]['model_name']}@{registered[day]['version']}"
