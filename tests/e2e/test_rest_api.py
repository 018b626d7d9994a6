"""training_pipeline triggered through the REST API v2 of a real Airflow; results read from XComs,
and the run's real task log files checked for the store's credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.airflow_api import AirflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.minio]

TRAINING_DAG = "training_pipeline"
RUN_TIMEOUT_S = 1200
CONF = {"dataset": "digits", "algorithm": "digits-cnn", "epochs": 2, "learning_rate": 0.01, "batch_size": 64, "seed": 7}


@pytest.fixture(scope="module")
def training_run(api: AirflowClient) -> dict:
    """One real run, shared by this module's tests (training is the expensive part)."""
    api.wait_for_dag(TRAINING_DAG)
    api.unpause(TRAINING_DAG)
    return api.run_to_success(TRAINING_DAG, CONF, timeout_s=RUN_TIMEOUT_S)


def test_triggered_training_run_succeeds_and_its_xcoms_report_the_registered_model(
    api: AirflowClient, training_run: dict
) -> None:
    run_id = training_run["dag_run_id"]
    states = api.task_states(TRAINING_DAG, run_id)
    assert states == {task: "success" for task in ("plan", "snapshot", "validate", "train", "evaluate", "register")}
    snapshot = api.xcom(TRAINING_DAG, run_id, "snapshot")
    registered = api.xcom(TRAINING_DAG, run_id, "register")
    assert registered["model_name"] == "digits-digits-cnn"
    assert registered["manifest_key"].startswith("models/digits-digits-cnn/versions/")
    assert len(snapshot["dataset_hash"]) == 64 and len(registered["weights_sha256"]) == 64


def test_task_log_files_carry_the_trainers_output_but_no_credential(training_run: dict, airflow, minio_server) -> None:
    """Every task of the run read the store's keys from the minio_default connection, and the
    trainer got them in its environment; none of the log files Airflow wrote holds them."""
    task_logs = Path(airflow.log_dir) / "tasks"
    run_dirs = list(task_logs.rglob(f"run_id={training_run['dag_run_id']}"))
    assert run_dirs, f"no task log directory for {training_run['dag_run_id']} under {task_logs}"
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
