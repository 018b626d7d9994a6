"""KubernetesPodExecutor's failure paths (re-scoring a champion in a pod that fails).

The real tier (tests/kubernetes/test_training_pipeline.py) re-scores a champion in a real pod;
these failure paths of the executor stay here, fast, with the stand-in cluster of
test_train_pod_operator.py at the API boundary: the real executor, hook and PodManager run,
and only CoreV1Api's HTTP methods answer from FakeCluster. The store is real.
"""
from __future__ import annotations

import pytest
from kubernetes.client import models as k8s
from kubernetes.client.rest import ApiException

from steps.executors.base import TrainerFailed
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.model_registry import version_key
from steps.store import StoreSettings, open_store
from steps.training.contract import TrainerResult, TrainingJob
from tests.test_pod_spec import DATASET_HASH, RUN_KEY, make_plan
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
