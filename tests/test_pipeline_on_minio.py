"""The whole training_pipeline against a real MinIO server (built from source), with the
credentials coming from the `minio_default` Airflow connection; and no secret leaks."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from steps.data.snapshot import snapshot_dataset
from steps.lifecycle.model_registry import load_manifest, read_alias
from steps.lifecycle.plan import run_key_for
from steps.lifecycle.register import RegisteredVersion
from steps.store.minio_store import MinioStore
from tests.minio_server import unique_bucket_prefix
from tests.pipeline_fixtures import catalog

pytestmark = [pytest.mark.minio]


def test_resnapshot_of_unchanged_data_uploads_zero_bytes_to_minio(minio_store):
    source = catalog().dataset("intents").source
    first = snapshot_dataset(minio_store, "intents", source)
    sent_after_first = minio_store.bytes_uploaded
    again = snapshot_dataset(minio_store, "intents", source, verify=True)
    assert first.bytes_uploaded > 0 and first.snapshot.dataset_hash == again.snapshot.dataset_hash
    assert again.bytes_uploaded == 0 and minio_store.bytes_uploaded == sent_after_first


@pytest.mark.slow
def test_training_pipeline_on_minio_registers_a_model_and_no_secret_leaks(
    minio_server, airflow_db, monkeypatch, capfd, caplog
):
    from trainyard.local_airflow import run_dag

    prefix = unique_bucket_prefix()
    monkeypatch.setenv("TRAINYARD_STORE", "minio")
    monkeypatch.setenv("TRAINYARD_MINIO_BUCKET_PREFIX", prefix)
    for name in ("TRAINYARD_MINIO_ENDPOINT", "TRAINYARD_MINIO_ACCESS_KEY", "TRAINYARD_MINIO_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    host, port = minio_server.endpoint.split(":")
    monkeypatch.setenv("AIRFLOW_CONN_MINIO_DEFAULT", json.dumps({
        "conn_type": "generic", "host": host, "port": int(port),
        "login": minio_server.access_key, "password": minio_server.secret_key, "extra": {"secure": False},
    }))

    run = run_dag("training_pipeline", {"dataset": "digits", "algorithm": "digits-cnn", "epochs": 2, "seed": 3})
    assert run.state == "success", run.failed_tasks

    store = MinioStore(minio_server.settings(bucket_prefix=prefix))
    key = f"runs/{run_key_for(run.dag_id, run.run_id)}/registered.json"
    registered = RegisteredVersion.model_validate_json(store.get_bytes(key))
    manifest = load_manifest(store, registered.model_name, registered.version)
    assert manifest.metrics.accuracy > 0.7 and read_alias(store, registered.model_name).version == 1
    assert registered.store_location.startswith("s3://") or minio_server.endpoint in registered.store_location

    secret, access = minio_server.secret_key, minio_server.access_key
    logs = capfd.readouterr()
    # What dag.test writes to the terminal, and the records that go through logging (the trainer's
    # streamed lines among them, which reach the fd or only the log capture depending on which
    # stream Airflow's logging was configured with first in this session).
    captured = logs.out + logs.err + caplog.text
    # Positive control: these are the task logs, the trainer's own lines among them.
    assert f"registered {registered.model_name}@{registered.version}" in captured
    assert "trainyard-trainer: train done" in captured
    assert secret not in captured and access not in captured  # task logs, as dag.test prints them
    for area in ("datasets", "runs", "models"):
        for object_key in store.list_keys(f"{area}/"):
            body = store.get_bytes(object_key)
            assert secret.encode() not in body and access.encode() not in body, object_key
    with sqlite3.connect(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db") as db:
        xcoms = [str(row[0]) for row in db.execute("SELECT value FROM xcom")]
    assert xcoms and not any(secret in value or access in value for value in xcoms)
