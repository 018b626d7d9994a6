"""The same training requested twice through the REST API of a real Airflow: the second run trains
nothing and names the first's version; `force` in the conf trains a new version with the same weights."""

from __future__ import annotations

import pytest

from tests.e2e.airflow_api import AirflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.minio]

TRAINING_DAG = "training_pipeline"
RUN_TIMEOUT_S = 900
# A seed no other e2e test uses, so the first run here is the first with this training identity.
CONF = {"dataset": "intents", "algorithm": "intent-classification", "epochs": 1, "learning_rate": 0.05,
        "batch_size": 8, "seed": 2317}


def test_a_repeated_request_reuses_the_registered_version_and_force_trains_a_new_one(api: AirflowClient) -> None:
    api.wait_for_dag(TRAINING_DAG)
    api.unpause(TRAINING_DAG)

    first = api.run_to_success(TRAINING_DAG, CONF, timeout_s=RUN_TIMEOUT_S)
    registered = api.xcom(TRAINING_DAG, first["dag_run_id"], "register")

    again = api.run_to_success(TRAINING_DAG, CONF, timeout_s=RUN_TIMEOUT_S)

    states = api.task_states(TRAINING_DAG, again["dag_run_id"])
    assert {task: states[task] for task in ("train", "evaluate", "register")} == dict.fromkeys(
        ("train", "evaluate", "register"), "skipped"
    ), states
    assert states["validate"] == "success"
    validation = api.xcom(TRAINING_DAG, again["dag_run_id"], "validate")
    assert validation["reused_from"], validation  # the first run's validation of the same snapshot
    reused = api.xcom(TRAINING_DAG, again["dag_run_id"], "train", key="reused_version")
    assert reused["reused"] is True
    assert (reused["model_name"], reused["version"]) == (registered["model_name"], registered["version"])
    assert reused["weights_sha256"] == registered["weights_sha256"]

    forced = api.run_to_success(TRAINING_DAG, {**CONF, "force": True}, timeout_s=RUN_TIMEOUT_S)

    assert api.task_states(TRAINING_DAG, forced["dag_run_id"])["train"] == "success"
    retrained = api.xcom(TRAINING_DAG, forced["dag_run_id"], "register")
    assert retrained["version"] > registered["version"]
    assert retrained["weights_sha256"] == registered["weights_sha256"]
    assert retrained["training_identity_sha256"] == registered["training_identity_sha256"]
