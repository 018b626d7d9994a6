"""training_pipeline with the Kubernetes executor, end to end on the tier: the trainer pod runs
the digest-pinned image from the tier's registry in the team's namespace, reads the store's keys
from the Secret, returns its result through the XCom sidecar, and registers the same weights as
the subprocess executor; a champion from another eval set is re-scored in a pod of its own.

Non-deferrable runs go through dag.test() in this process; the deferrable run goes through a
real Airflow (PostgreSQL, scheduler, triggerer) that watches the pod from its triggerer.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from steps.catalog.teams import load_teams
from steps.lifecycle.manifest import ModelManifest
from steps.lifecycle.model_registry import load_manifest
from steps.lifecycle.plan import run_key_for
from steps.lifecycle.register import RegisteredVersion
from steps.store import open_store
from steps.store.run_layout import RunLayout
from tests.kubernetes.pipeline_tier import KubernetesPipelineTier
from tests.kubernetes.pods import trainer_pods_left
from tests.minio_server import unique_bucket_prefix

# The container tier's parameters (tests/test_container_executor.py), so all three executors
# are held to one weights hash.
FAST = {"dataset": "digits", "algorithm": "digits-cnn", "epochs": 2, "batch_size": 64, "learning_rate": 0.01, "seed": 7}
# A logical date snapshots the partitions up to it: two dates, two eval sets.
EARLIER = datetime(2026, 1, 12, tzinfo=UTC)
LATER = datetime(2026, 1, 19, tzinfo=UTC)
PIPELINE_TIMEOUT_S = 1800  # the first trainer pod on a machine pulls a 2.7 GB image


def _registered(tier: KubernetesPipelineTier, bucket_prefix: str, dag_id: str, run_id: str) -> ModelManifest:
    store = open_store(replace(tier.store, bucket_prefix=bucket_prefix))
    registered = RegisteredVersion.model_validate_json(
        store.get_bytes(RunLayout(run_key_for(dag_id, run_id)).registered)
    )
    return load_manifest(store, registered.model_name, registered.version)


@pytest.fixture(scope="module")
def subprocess_weights(kubernetes_pipeline: KubernetesPipelineTier, airflow_db) -> str:
    """The weights hash the subprocess executor registers for FAST on the EARLIER snapshot."""
    from trainyard.local_airflow import run_dag

    prefix = unique_bucket_prefix()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**kubernetes_pipeline.env("subprocess"), "TRAINYARD_MINIO_BUCKET_PREFIX": prefix}.items():
            patch.setenv(name, value)
        run = run_dag("training_pipeline", FAST, logical_date=EARLIER)
    assert run.state == "success", run.failed_tasks
    return _registered(kubernetes_pipeline, prefix, run.dag_id, run.run_id).weights_sha256


@contextmanager
def _removed_afterwards(directory: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.kubernetes
@pytest.mark.timeout(PIPELINE_TIMEOUT_S)
def test_pipeline_trains_in_a_pod_registers_the_subprocess_weights_and_rescores_the_champion_in_a_pod(
    pipeline_env: KubernetesPipelineTier, subprocess_weights: str, airflow_db, monkeypatch, core_v1
):
    from trainyard.local_airflow import run_dag

    tier = pipeline_env
    prefix = unique_bucket_prefix()
    monkeypatch.setenv("TRAINYARD_MINIO_BUCKET_PREFIX", prefix)

    first = run_dag("training_pipeline", FAST, logical_date=EARLIER)
    assert first.state == "success", first.failed_tasks
    champion = _registered(tier, prefix, first.dag_id, first.run_id)
    assert champion.executor == "kubernetes"
    assert champion.trainer.pinned_reference == tier.images["digits-cnn"]  # pulled by digest from the tier's registry
    assert champion.weights_sha256 == subprocess_weights
    assert champion.evaluation.champion_source == "none" and champion.version == 1

    # A newer snapshot has another eval set: the champion is re-scored by its own image, in a pod.
    second = run_dag("training_pipeline", FAST, logical_date=LATER)
    assert second.state == "success", second.failed_tasks
    challenger = _registered(tier, prefix, second.dag_id, second.run_id)
    assert challenger.version == 2
    assert challenger.evaluation.champion_version == 1
    assert challenger.evaluation.champion_source == "re-evaluated"
    assert challenger.evaluation.champion_metrics.n_examples == challenger.metrics.n_examples
    store = open_store(replace(tier.store, bucket_prefix=prefix))
    champion_log = store.get_bytes(RunLayout(run_key_for(second.dag_id, second.run_id)).champion_eval.trainer_log)
    assert b"evaluate done" in champion_log
    assert not any(secret.encode() in champion_log for secret in tier.secret_values())
    # Succeeded pods are deleted: the trainer's two pods and the champion's.
    assert trainer_pods_left(core_v1, tier.team_namespaces["default"]) == []


@pytest.mark.kubernetes
@pytest.mark.e2e
@pytest.mark.timeout(PIPELINE_TIMEOUT_S)
def test_deferrable_pipeline_waits_for_the_pod_in_the_triggerer_and_registers_the_same_weights(
    kubernetes_pipeline: KubernetesPipelineTier, subprocess_weights: str
):
    import sys

    from tests.e2e.airflow_api import AirflowClient
    from tests.kubernetes.cluster import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import airflow_stack  # scripts/ is not a package

    tier = kubernetes_pipeline
    prefix = unique_bucket_prefix()
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-k8s-airflow-"))
    env = {
        **tier.env(),
        "TRAINYARD_MINIO_BUCKET_PREFIX": prefix,
        "TRAINYARD_HOME": str(workdir / "trainyard_home"),
        # Every operator that can defer does: the train task hands its pod to the triggerer.
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
    }
    stack = airflow_stack.AirflowStack(bundles={"dags-folder": REPO_ROOT / "dags"}, workdir=workdir, extra_env=env)
    with _removed_afterwards(workdir), stack:  # the stack stops first, then its files go
        api = AirflowClient(stack.base_url, stack.admin_user, stack.admin_password)
        api.wait_for_dag("training_pipeline")
        # The train task's pool: the stack creates every team's pool from config/teams.yaml, as
        # images/airflow/init_airflow.py does for Compose; a task in a missing pool never runs.
        team = load_teams().team("default")
        pool = api.request("GET", f"/api/v2/pools/{team.pool}")
        assert pool["slots"] == team.pool_slots, pool
        api.unpause("training_pipeline")
        run = api.trigger("training_pipeline", conf=FAST, logical_date=EARLIER)
        finished = api.wait_for_run("training_pipeline", run["dag_run_id"], timeout_s=PIPELINE_TIMEOUT_S - 300)
        assert finished["state"] == "success", api.explain_run("training_pipeline", run["dag_run_id"])
        train_log = api.task_log("training_pipeline", run["dag_run_id"], "train", 1)
        # The triggerer writes what the trigger did beside the task's log: attempt=1.log.trigger.<id>.log
        task_dir = stack.log_dir / "tasks" / "dag_id=training_pipeline" / f"run_id={run['dag_run_id']}" / "task_id=train"
        trigger_log = "\n".join(path.read_text(errors="replace") for path in task_dir.glob("attempt=1.log.trigger.*.log"))

    manifest = _registered(tier, prefix, "training_pipeline", run["dag_run_id"])
    assert manifest.weights_sha256 == subprocess_weights
    assert manifest.trainer.pinned_reference == tier.images["digits-cnn"]
    # The worker deferred and resumed; the triggerer watched the pod in between.
    assert "Pausing task as DEFERRED" in train_log, train_log[-3000:]
    assert "Checking pod 'train-digits-cnn-" in trigger_log and "in namespace 'trainyard'" in trigger_log, trigger_log[-3000:]
    for secret in tier.secret_values():
        assert secret not in train_log and secret not in trigger_log
