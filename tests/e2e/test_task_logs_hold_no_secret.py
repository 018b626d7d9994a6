"""The real Airflow task log files (what the UI shows and what gets shipped to log storage)
never hold the store's credentials, although every task of a run reads them from the
minio_default connection and the trainer gets them in its environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.airflow_api import AirflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.minio]

DAG_ID = "training_pipeline"
CONF = {"dataset": "intents", "algorithm": "intent-classification", "epochs": 1, "learning_rate": 0.05,
        "batch_size": 16, "seed": 3}
RUN_TIMEOUT_S = 1200


def test_task_log_files_of_a_training_run_carry_the_trainers_output_but_no_credential(
    api: AirflowClient, airflow, minio_server
) -> None:
    api.wait_for_dag(DAG_ID)
    api.unpause(DAG_ID)
    run = api.run_to_success(DAG_ID, CONF, timeout_s=RUN_TIMEOUT_S)

    task_logs = Path(airflow.log_dir) / "tasks"
    run_dirs = list(task_logs.rglob(f"run_id={run['dag_run_id']}"))
    assert run_dirs, f"no task log directory for {run['dag_run_id']} under {task_logs}"
    train_log = "\n".join(p.read_text(errors="replace") for p in run_dirs[0].glob("task_id=train/*.log"))
    # Positive control: these are the files the trainer's own lines went to.
    assert "trainyard-trainer: train done" in train_log, train_log[-2000:]

    scanned = 0
    for path in Path(airflow.log_dir).rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            scanned += 1
            assert minio_server.secret_key not in text, f"{path} holds the store's secret key"
            assert minio_server.access_key not in text, f"{path} holds the store's access key"
    assert scanned > 6  # the components' logs and one file per task at least
