"""training_pipeline triggered through the REST API v2 of a real Airflow; results read from XComs."""

from __future__ import annotations

import pytest

from tests.e2e.airflow_api import AirflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.minio]

TRAINING_DAG = "training_pipeline"
RUN_TIMEOUT_S = 1200


def test_triggered_training_run_succeeds_and_its_xcoms_report_the_registered_model(api: AirflowClient) -> None:
    api.wait_for_dag(TRAINING_DAG)
    api.unpause(TRAINING_DAG)
    conf = {"dataset": "digits", "algorithm": "digits-cnn", "epochs": 2, "learning_rate": 0.01, "batch_size": 64, "seed": 7}

    run = api.run_to_success(TRAINING_DAG, conf, timeout_s=RUN_TIMEOUT_S)

    states = api.task_states(TRAINING_DAG, run["dag_run_id"])
    assert states == {task: "success" for task in ("plan", "snapshot", "validate", "train", "evaluate", "register")}
    snapshot = api.xcom(TRAINING_DAG, run["dag_run_id"], "snapshot")
    registered = api.xcom(TRAINING_DAG, run["dag_run_id"], "register")
    assert registered["model_name"] == "digits-digits-cnn"
    assert registered["manifest_key"].startswith("models/digits-digits-cnn/versions/")
    assert len(snapshot["dataset_hash"]) == 64 and len(registered["weights_sha256"]) == 64
