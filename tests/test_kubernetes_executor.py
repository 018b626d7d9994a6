"""KubernetesPodExecutor: re-scoring a champion runs as a trainer pod, not on the worker.

These tests mock because no Kubernetes API server can run on this machine. The mock sits
at the API boundary, exactly as in test_train_pod_operator.py (whose stand-in cluster they
reuse): the real executor, hook and PodManager run, and only CoreV1Api's HTTP methods answer
from FakeCluster. The store is real: a LocalStore in tmp_path, or the real MinIO server.
"""
from __future__ import annotations

import json

import pytest
from kubernetes.client import models as k8s
from kubernetes.client.rest import ApiException

from steps.executors.base import TrainerFailed
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.model_registry import version_key
from steps.store import StoreSettings, open_store
from steps.training.contract import TrainerResult, TrainingJob
from tests.test_pod_spec import DATASET_HASH, DIGEST, RUN_KEY, make_plan
from tests.test_train_pod_operator import _running, cluster  # noqa: F401  (cluster is a fixture)
from tests.test_train_pod_operator import trainer_result as result_record

WEIGHTS_KEY = version_key("digits-digits-cnn", 3, "weights.safetensors")
DEADLINE_S = 600


def champion_job() -> TrainingJob:
    """The job steps.lifecycle.evaluate.champion_metrics_on builds: the champion's trainer, in evaluate mode."""
    return TrainingJob(
        run_id=f"{RUN_KEY}-champion",
        algorithm="digits-cnn",
        mode="evaluate",
        dataset_name="digits",
        dataset_hash=DATASET_HASH,
        dataset_snapshot_key=f"datasets/snapshots/digits/{DATASET_HASH}.json",
        output_prefix=f"runs/{RUN_KEY}/champion-eval",
        seed=42,
        split_seed=20260101,
        test_fraction=0.2,
        hyperparameters={"epochs": 2, "learning_rate": 0.005, "batch_size": 64},
        num_threads=1,
        device="cpu",
        weights_key=WEIGHTS_KEY,
    )


CHAMPION_RESULT = TrainerResult.model_validate(
    result_record(
        run_id=f"{RUN_KEY}-champion",
        mode="evaluate",
        weights_key=WEIGHTS_KEY,
        train_examples=0,
        epochs_completed=0,
        metrics={
            "accuracy": 0.81, "macro_f1": 0.79, "loss": 0.55, "confusion_matrix": [[4, 1], [1, 4]], "n_examples": 10
        },
    )
)


def champion_image() -> TrainerImage:
    return TrainerImage.model_validate(make_plan()["image"])


def pod_env(body: dict) -> dict[str, dict]:
    return {e["name"]: e for e in body["spec"]["containers"][0]["env"]}


def pod_stores_its_result(fake, store_settings: StoreSettings) -> None:
    """Play the trainer: a pod that succeeds writes result.json where its own env says to."""
    create = fake.create_namespaced_pod

    def create_and_run(body, namespace, **kwargs):
        created = create(body, namespace, **kwargs)
        if fake.outcome == "succeeded":
            job = TrainingJob.from_env({name: e["value"] for name, e in pod_env(body).items() if "value" in e})
            open_store(store_settings).put_bytes(job.result_output_key, CHAMPION_RESULT.model_dump_json().encode())
        return created

    fake.create_namespaced_pod = create_and_run


@pytest.fixture
def local_settings(tmp_path) -> StoreSettings:
    return StoreSettings(backend="local", root=str(tmp_path / "store"))


@pytest.fixture
def pod_cluster(cluster, local_settings):  # noqa: F811
    # This pod has no XCom sidecar (the result travels through the store), so nothing keeps it Running.
    cluster.sidecar_killed = True
    pod_stores_its_result(cluster, local_settings)
    return cluster


def executor(**kwargs):
    from operators.kubernetes_executor import KubernetesPodExecutor

    kwargs.setdefault("poll_interval_s", 0)
    return KubernetesPodExecutor(**kwargs)


def test_champion_rescored_in_a_pod_returns_the_result_the_trainer_stored(pod_cluster, local_settings):
    result = executor().run(champion_job(), champion_image(), local_settings, deadline_s=DEADLINE_S)

    assert result == CHAMPION_RESULT
    assert result.metrics.macro_f1 == 0.79
    stored_log = open_store(local_settings).get_bytes(f"runs/{RUN_KEY}/champion-eval/trainer.log").decode()
    assert "wrote result.json" in stored_log  # the pod's log is kept beside its outputs, as local executors do
    assert pod_cluster.deleted == [pod_cluster.created[0]["metadata"]["name"]]


def test_submitted_pod_is_the_evaluate_mode_job_pinned_by_digest(pod_cluster, local_settings):
    executor().run(champion_job(), champion_image(), local_settings, deadline_s=DEADLINE_S)

    [body] = pod_cluster.created
    env = pod_env(body)
    assert env["TRAINYARD_MODE"]["value"] == "evaluate"
    assert env["TRAINYARD_WEIGHTS_KEY"]["value"] == WEIGHTS_KEY
    assert env["TRAINYARD_OUTPUT_PREFIX"]["value"] == f"runs/{RUN_KEY}/champion-eval"
    assert body["spec"]["containers"][0]["image"] == f"127.0.0.1:5000/trainyard/digits-cnn@{DIGEST}"
    assert body["metadata"]["namespace"] == "trainyard"  # the default team's namespace
    assert body["spec"]["activeDeadlineSeconds"] == DEADLINE_S
    assert body["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.minio
def test_store_credentials_reach_the_pod_only_as_secret_refs(cluster, minio_server):  # noqa: F811
    from tests.minio_server import unique_bucket_prefix

    settings = minio_server.settings(bucket_prefix=unique_bucket_prefix())
    cluster.sidecar_killed = True
    pod_stores_its_result(cluster, settings)

    result = executor().run(champion_job(), champion_image(), settings, deadline_s=DEADLINE_S)

    assert result == CHAMPION_RESULT  # read back from the real MinIO the pod wrote to
    env = pod_env(cluster.created[0])
    for name in ("TRAINYARD_MINIO_ACCESS_KEY", "TRAINYARD_MINIO_SECRET_KEY"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "trainyard-store", "key": name}
    submitted = json.dumps(cluster.created)
    assert settings.minio_secret_key not in submitted and settings.minio_access_key not in submitted


def test_failed_pod_raises_trainer_failed_with_the_log_tail(pod_cluster, local_settings):
    pod_cluster.outcome = "failed"
    pod_cluster.log_lines = [f"step {i}" for i in range(100)] + ["RuntimeError: weights file is truncated"]

    with pytest.raises(TrainerFailed) as failed:
        executor().run(champion_job(), champion_image(), local_settings, deadline_s=DEADLINE_S)

    message = str(failed.value)
    assert "trainer 'digits-cnn' exited with code 1 in pod trainyard/" in message
    assert "RuntimeError: weights file is truncated" in message and "step 99" in message
    assert "step 50" not in message  # the tail, not the whole log
    assert pod_cluster.deleted == [pod_cluster.created[0]["metadata"]["name"]]  # default team keeps none


def test_failed_pod_is_kept_when_the_team_keeps_failed_pods(pod_cluster, local_settings):
    pod_cluster.outcome = "failed"

    with pytest.raises(TrainerFailed):
        executor(team="vision").run(champion_job(), champion_image(), local_settings, deadline_s=DEADLINE_S)

    assert pod_cluster.created[0]["metadata"]["namespace"] == "trainyard-vision"
    assert pod_cluster.deleted == []


def test_pod_stopped_at_its_active_deadline_fails_naming_the_deadline(pod_cluster, local_settings):
    pod_cluster.outcome = "deadline"
    pod_cluster.log_lines = ["scoring batch 1/400", "scoring batch 2/400"]

    with pytest.raises(TrainerFailed) as failed:
        executor().run(champion_job(), champion_image(), local_settings, deadline_s=DEADLINE_S)

    message = str(failed.value)
    assert "exceeded its deadline" in message and f"activeDeadlineSeconds={DEADLINE_S}" in message
    assert "scoring batch 2/400" in message
    assert pod_cluster.deleted


def test_pod_still_running_at_the_deadline_is_deleted_and_fails_naming_the_deadline(pod_cluster, local_settings):
    fake = pod_cluster
    fake.log_lines = ["scoring batch 1/400"]

    def running_until_deleted(name: str) -> k8s.V1Pod:  # the kubelet never ends it on its own
        if name in fake.deleted:
            raise ApiException(status=404, reason="Not Found")
        request = next(p for p in fake.created if p["metadata"]["name"] == name)
        return k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=name, namespace=request["metadata"]["namespace"]),
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base")]),
            status=k8s.V1PodStatus(phase="Running", container_statuses=[_running("base")]),
        )

    fake._pod = running_until_deleted

    with pytest.raises(TrainerFailed) as failed:
        executor(deadline_grace_s=0).run(champion_job(), champion_image(), local_settings, deadline_s=1)

    message = str(failed.value)
    assert "trainer 'digits-cnn' exceeded its deadline (deadline 1s" in message
    assert "scoring batch 1/400" in message
    assert fake.deleted == [fake.created[0]["metadata"]["name"]]  # deleted once, by the deadline


def test_image_that_cannot_be_pulled_fails_naming_the_pull_error(pod_cluster, local_settings):
    pod_cluster.outcome = "unpullable"

    with pytest.raises(TrainerFailed, match="never started in pod trainyard/.*: ErrImagePull: manifest unknown"):
        executor().run(champion_job(), champion_image(), local_settings, deadline_s=DEADLINE_S)
    assert pod_cluster.deleted


@pytest.mark.minio
def test_failure_message_and_stored_log_never_show_a_secret(cluster, minio_server):  # noqa: F811
    from tests.minio_server import unique_bucket_prefix

    settings = minio_server.settings(bucket_prefix=unique_bucket_prefix())
    cluster.sidecar_killed = True
    cluster.outcome = "failed"
    cluster.log_lines = [f"connecting with secret {settings.minio_secret_key}", "AccessDenied"]

    with pytest.raises(TrainerFailed) as failed:
        executor().run(champion_job(), champion_image(), settings, deadline_s=DEADLINE_S)

    assert "AccessDenied" in str(failed.value) and settings.minio_secret_key not in str(failed.value)
    stored_log = open_store(settings).get_bytes(f"runs/{RUN_KEY}/champion-eval/trainer.log").decode()
    assert "AccessDenied" in stored_log and settings.minio_secret_key not in stored_log


def test_evaluate_step_rescores_a_champion_from_another_eval_set_in_a_pod(pod_cluster, local_settings):
    """What evaluate_task does in Kubernetes mode: the champion (scored on another eval set) is
    re-scored by its own trainer image in a pod, and the challenger is judged against that."""
    from steps.lifecycle.evaluate import evaluate_challenger
    from steps.lifecycle.manifest import (
        AirflowLineage,
        DatasetLineage,
        EvaluationRecord,
        ModelManifest,
        ValidationLineage,
    )
    from steps.lifecycle.model_registry import set_alias
    from steps.lifecycle.plan import RunPlan

    store = open_store(local_settings)
    plan = RunPlan.model_validate(make_plan())
    champion = ModelManifest(
        model_name=plan.model_name,
        version=3,
        created_at="2026-11-01T00:00:00+00:00",
        run_key="training_pipeline-older-run",
        algorithm="digits-cnn",
        trainer=champion_image(),
        executor="kubernetes",
        dataset=DatasetLineage(name="digits", dataset_hash="12" * 32, partitions=["dt=2026-10-01"], as_of=None,
                               source="/data/digits", eval_set_hash="aa" * 32),
        validation=ValidationLineage(success=True, report_key="r"),
        seed=42, split_seed=20260101, test_fraction=0.2,
        hyperparameters={"epochs": 2, "learning_rate": 0.005, "batch_size": 64},
        num_threads=1, device="cpu", torch_version="2.15.0",
        metrics=CHAMPION_RESULT.metrics.model_copy(update={"macro_f1": 0.99}),  # on its old eval set: not comparable
        weights_sha256="02" * 32,
        evaluation=EvaluationRecord(primary_metric="macro_f1", min_improvement=0.0, champion_version=None,
                                    champion_metrics=None, champion_source="none", promote=True, reason="first"),
        airflow=AirflowLineage(dag_id="training_pipeline", run_id="older", logical_date=None),
        files=[],
    )
    store.put_bytes(version_key(plan.model_name, 3, "manifest.json"), champion.model_dump_json().encode())
    set_alias(store, plan.model_name, "champion", 3, champion.run_key, "first", expected_sha256=None)

    record = evaluate_challenger(
        store, local_settings, plan, TrainerResult.model_validate(result_record()), executor(team=plan.team)
    )

    assert record.champion_source == "re-evaluated"
    assert record.champion_metrics == CHAMPION_RESULT.metrics  # the pod's score, not the recorded 0.99
    assert record.promote and "beats champion v3 0.7900" in record.reason
    assert pod_env(pod_cluster.created[0])["TRAINYARD_WEIGHTS_KEY"]["value"] == WEIGHTS_KEY
