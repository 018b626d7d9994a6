"""The kill-and-resume proof on the real cluster: training_pipeline with the Kubernetes executor
(dag.test, blocking mode); once the checkpoint of epoch 2 is in the tier's MinIO, the trainer pod is
deleted with grace 0, as `kubectl delete --grace-period=0 --force` does. The task fails as `evicted`
(retryable), Airflow retries it in a new pod, whose trainer resumes from the newest checkpoint of its
run, and the registered weights are bit-identical to an uninterrupted run of the same request.

Grace 0 removes the pod from the API at once; the kubelet stops its container a moment later. What the
retry must resume from is the newest checkpoint once the trainer process itself is gone (a container's
processes are this machine's processes: tests/trainer_kill.py finds them by their environment)."""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import psutil
import pytest

from steps.lifecycle.manifest import ModelManifest
from steps.lifecycle.model_registry import load_manifest
from steps.lifecycle.plan import run_key_for
from steps.lifecycle.register import RegisteredVersion
from steps.lifecycle.run_failure import RunFailure
from steps.store import ArtifactStore, open_store
from steps.store.run_layout import RunLayout
from tests.kubernetes.pipeline_tier import KubernetesPipelineTier
from tests.minio_server import unique_bucket_prefix
from tests.test_resume_after_kill import _train_tries
from tests.trainer_kill import _trainer_processes

# An epoch of digits-cnn at batch 8 takes ~0.2 s here, and the kubelet stopped a deleted pod's trainer
# ~11 epochs after the deletion: 60 leave it ample room to stop the trainer before its last epoch.
EPOCHS = 60
RUN = {"dataset": "digits", "algorithm": "digits-cnn", "epochs": EPOCHS, "batch_size": 8, "learning_rate": 0.01, "seed": 7,
       "checkpoint_every": 1}
SNAPSHOT_DATE = datetime(2026, 1, 12, tzinfo=UTC)
RUN_TIMEOUT_S = 1800  # two pods and a reference run on a loaded 2-core machine
DELETE_TIMEOUT_S = 900
POLL_S = 0.2
MARKER_RE = re.compile(r"^runs/[^/]+/train/checkpoints/epoch-(\d{4,})/checkpoint\.json$")


def _checkpointed_epochs(store: ArtifactStore) -> list[int]:
    return sorted(int(m.group(1)) for key in store.list_keys("runs/") if (m := MARKER_RE.match(key)))


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Deletion:
    pod: str | None = None
    newest_checkpoint: int | None = None  # the newest epoch checkpointed once the trainer process was gone
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


def delete_pod_after_checkpoint(core_v1, namespace: str, store: ArtifactStore, bucket_prefix: str, *, epoch: int) -> Deletion:
    """In the background: once the checkpoint of `epoch` exists, delete the running trainer pod (grace 0)
    and wait until its trainer process has been stopped."""
    deletion = Deletion()

    def running_trainer_pod() -> str | None:
        for pod in core_v1.list_namespaced_pod(namespace, label_selector="trainyard.io/algorithm=digits-cnn").items:
            statuses = pod.status.container_statuses or []
            if pod.metadata.deletion_timestamp is None and any(s.name == "base" and s.state.running for s in statuses):
                return pod.metadata.name
        return None

    def run() -> None:
        deadline = time.monotonic() + DELETE_TIMEOUT_S
        try:
            while max(_checkpointed_epochs(store), default=0) < epoch:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no checkpoint of epoch {epoch} after {DELETE_TIMEOUT_S}s")
                time.sleep(POLL_S)
            name = running_trainer_pod()
            trainers = _trainer_processes({"TRAINYARD_MINIO_BUCKET_PREFIX": bucket_prefix})
            if name is None or not trainers:
                raise AssertionError(f"the checkpoint of epoch {epoch} exists but no trainer pod or process is running")
            core_v1.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
            deletion.pod = name
            while any(_alive(proc) for proc in trainers):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the trainer of pod {name} still ran {DELETE_TIMEOUT_S}s after its deletion")
                time.sleep(POLL_S)
            deletion.newest_checkpoint = _checkpointed_epochs(store)[-1]
        except Exception as error:  # noqa: BLE001 - reported to the test through the Deletion
            deletion.error = f"{type(error).__name__}: {error}"
        finally:
            deletion.done.set()

    threading.Thread(target=run, daemon=True).start()
    return deletion


def _registered(store: ArtifactStore, run) -> ModelManifest:
    registered = RegisteredVersion.model_validate_json(store.get_bytes(RunLayout(run_key_for(run.dag_id, run.run_id)).registered))
    return load_manifest(store, registered.model_name, registered.version)


@pytest.mark.kubernetes
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_a_trainer_pod_deleted_after_checkpoint_2_resumes_in_a_new_pod_to_the_uninterrupted_weights(
    pipeline_env: KubernetesPipelineTier, airflow_db, monkeypatch, core_v1
):
    from trainyard.local_airflow import run_dag

    tier = pipeline_env
    monkeypatch.setenv("TRAINYARD_RETRY_DELAY_S", "0")

    # The uninterrupted run of the same request (subprocess executor: the tier holds all executors to one hash).
    reference_prefix = unique_bucket_prefix()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRAINYARD_EXECUTOR", "subprocess")
        patch.setenv("TRAINYARD_MINIO_BUCKET_PREFIX", reference_prefix)
        reference = run_dag("training_pipeline", RUN, logical_date=SNAPSHOT_DATE)
    assert reference.state == "success", reference.failed_tasks
    uninterrupted = _registered(open_store(replace(tier.store, bucket_prefix=reference_prefix)), reference)
    assert uninterrupted.resumed is None and uninterrupted.epochs_completed == EPOCHS

    prefix = unique_bucket_prefix()
    monkeypatch.setenv("TRAINYARD_MINIO_BUCKET_PREFIX", prefix)
    store = open_store(replace(tier.store, bucket_prefix=prefix))
    namespace = tier.team_namespaces["default"]
    deletion = delete_pod_after_checkpoint(core_v1, namespace, store, prefix, epoch=2)
    run = run_dag("training_pipeline", RUN, logical_date=SNAPSHOT_DATE)
    deletion.done.wait(timeout=60)

    assert deletion.error is None, deletion.error
    assert run.state == "success", run.failed_tasks
    assert _train_tries(run) == 2  # the deleted pod cost one retry, in a pod of its own
    assert deletion.newest_checkpoint is not None and deletion.newest_checkpoint < EPOCHS  # stopped while training
    manifest = _registered(store, run)
    assert manifest.executor == "kubernetes"
    assert manifest.trainer.pinned_reference == tier.images["digits-cnn"]
    assert manifest.resumed is not None, "the retried pod trained from epoch 1"
    assert manifest.resumed.from_epoch == deletion.newest_checkpoint + 1 >= 3
    assert manifest.resumed.checkpoint_key.endswith(
        f"/train/checkpoints/epoch-{deletion.newest_checkpoint:04d}/checkpoint.json"
    )
    assert manifest.epochs_completed == EPOCHS
    assert manifest.weights_sha256 == uninterrupted.weights_sha256
    # The first try's failure is kept beside the run, as the one line the table in docs/kubernetes.md names.
    failure = RunFailure.model_validate_json(store.get_bytes(RunLayout(manifest.run_key).failure("train")))
    assert failure.kind == "evicted" and failure.retryable
    assert deletion.pod in failure.reason and "deleted while the trainer ran" in failure.reason
    # The retry's pod succeeded and is deleted (its XCom sidecar may still be in its grace period).
    pods = [p for p in core_v1.list_namespaced_pod(namespace).items if p.metadata.name.startswith("train-")]
    assert [p.metadata.name for p in pods if p.metadata.deletion_timestamp is None] == []
