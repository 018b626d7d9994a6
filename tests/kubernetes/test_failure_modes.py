"""How a Kubernetes training run fails, on the real cluster: the kubelet's deadline, the team's
ResourceQuota, a digest gone from the registry, the memory limit, a pod deleted mid-training and
a trainer exiting non-zero. Each ends in one clear line (the task's error and
runs/<run_key>/failures/train.json, with the right kind) and nothing registered.

Every case is the real training_pipeline DAG with the real trainer image; what breaks it is what
breaks it for a user: an algorithm catalog entry (TRAINYARD_ALGORITHMS_CATALOG), a registered
image version, or someone deleting the pod.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import yaml

from steps.catalog.catalog import ImageVersion, register_image_version
from steps.kubernetes.pod_spec import TRAINER_STARTUP_TIMEOUT_S
from steps.lifecycle.plan import run_key_for
from steps.lifecycle.run_failure import RunFailure
from steps.store import open_store
from steps.store.run_layout import RunLayout
from tests.kubernetes.pipeline_tier import KubernetesPipelineTier
from tests.minio_server import unique_bucket_prefix

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN = {"dataset": "digits", "algorithm": "digits-cnn", "epochs": 2, "batch_size": 64, "learning_rate": 0.01, "seed": 7}
RUN_TIMEOUT_S = 900
POD_RUNNING_TIMEOUT_S = 300


class FailedRun:
    def __init__(self, tier: KubernetesPipelineTier, prefix: str, run, log: str):
        self.run = run
        self.log = log
        self.store = open_store(replace(tier.store, bucket_prefix=prefix))
        self.layout = RunLayout(run_key_for(run.dag_id, run.run_id))

    def failure(self) -> RunFailure:
        return RunFailure.model_validate_json(self.store.get_bytes(self.layout.failure("train")))

    def registered_versions(self) -> list[str]:
        return [key for key in self.store.list_keys("models/") if key.endswith("manifest.json")]


@pytest.fixture
def run_failing_pipeline(pipeline_env: KubernetesPipelineTier, airflow_db, monkeypatch, caplog, capfd, tmp_path):
    """Run training_pipeline with a changed digits-cnn catalog entry; the run must fail in `train`."""
    from trainyard.local_airflow import run_dag

    def run(catalog_changes: dict | None = None, before=None, run_changes: dict | None = None) -> FailedRun:
        prefix = unique_bucket_prefix()
        monkeypatch.setenv("TRAINYARD_MINIO_BUCKET_PREFIX", prefix)
        catalog = yaml.safe_load((PROJECT_ROOT / "config" / "algorithms.yaml").read_text())
        # No retries: these cases test a failure's line and kind, and a retry of a retryable kind
        # would resume or fail again 30 s later; retry and resume are test_resume_after_pod_delete.py's.
        for key, value in {"retries": 0, **(catalog_changes or {})}.items():
            entry = catalog["digits-cnn"]
            *parents, leaf = key.split(".")
            for parent in parents:
                entry = entry[parent]
            entry[leaf] = value
        path = tmp_path / f"algorithms-{prefix}.yaml"
        path.write_text(yaml.safe_dump(catalog))
        monkeypatch.setenv("TRAINYARD_ALGORITHMS_CATALOG", str(path))
        if before is not None:
            before(open_store(replace(pipeline_env.store, bucket_prefix=prefix)))
        caplog.clear()
        capfd.readouterr()
        outcome = run_dag("training_pipeline", {**RUN, **(run_changes or {})})
        out, err = capfd.readouterr()
        assert outcome.state == "failed"
        assert outcome.failed_tasks == ["train"], outcome
        assert set(outcome.upstream_failed_tasks) == {"train_result", "evaluate", "register"}
        # The task log as dag.test writes it: the task runner's lines on stdout, the rest through logging.
        return FailedRun(pipeline_env, prefix, outcome, "\n".join((out, err, caplog.text)))

    return run


def assert_failed_cleanly(failed: FailedRun, kind: str, *words: str) -> RunFailure:
    failure = failed.failure()
    assert failure.kind == kind, failure
    for word in words:
        assert word in failure.reason, failure.reason
    assert "\n" not in failure.reason and "Traceback" not in failure.reason
    assert failure.summary in failed.log  # the task log says the same one line
    assert failed.registered_versions() == []
    return failure


@pytest.mark.kubernetes
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_pod_past_its_deadline_is_stopped_by_the_kubelet_and_fails_as_deadline(run_failing_pipeline):
    # 200 epochs take far longer than 3 s; with RUN's 2 a warm node once finished inside the deadline.
    failed = run_failing_pipeline({"deadline_s": 3}, run_changes={"epochs": 200})
    failure = assert_failed_cleanly(failed, "deadline", "activeDeadlineSeconds=3", "kubelet")
    assert failure.retryable


@pytest.mark.kubernetes
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_pod_over_the_team_quota_is_refused_naming_the_quota(run_failing_pipeline):
    # The default team's namespace holds at most limits.memory=32Gi (deploy/resource-quotas.yaml).
    failed = run_failing_pipeline({"resources.memory_limit": "40Gi"})
    failure = assert_failed_cleanly(
        # requested: the trainer's 40Gi plus the XCom sidecar's 64Mi, in the API server's units
        failed, "quota-exceeded", "exceeded quota: trainyard-training", "requested: limits.memory=41024Mi",
        "limited: limits.memory=32Gi",
    )
    assert not failure.retryable  # the request alone is more than the whole quota: waiting cannot help


@pytest.mark.kubernetes
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_digest_missing_from_the_registry_fails_fast_as_an_image_pull_error(run_failing_pipeline, kubernetes_pipeline):
    repository = kubernetes_pipeline.images["digits-cnn"].split("@")[0]
    gone = "sha256:" + "0" * 64

    def register_a_deleted_digest(store):  # what a registry garbage collection leaves behind
        register_image_version(store, "digits-cnn", ImageVersion(
            effective_from=date.today(), version="9.9.9", image=f"{repository}:9.9.9", image_digest=gone))

    started = time.monotonic()
    failed = run_failing_pipeline(before=register_a_deleted_digest)
    # The pull error ends the wait: not the start-up timeout, let alone the hour-long deadline.
    assert time.monotonic() - started < TRAINER_STARTUP_TIMEOUT_S
    failure = assert_failed_cleanly(failed, "image-pull", f"{repository}@{gone}", "ErrImagePull", "code = NotFound")
    assert not failure.retryable


@pytest.mark.kubernetes
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_trainer_over_its_memory_limit_is_oom_killed(run_failing_pipeline):
    failed = run_failing_pipeline({"resources.memory_request": "48Mi", "resources.memory_limit": "48Mi"})
    assert_failed_cleanly(failed, "oom-killed", "OOM-killed", "memory limit 48Mi", "exit code 137")


@pytest.mark.kubernetes
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_trainer_exiting_non_zero_fails_with_its_own_error_from_the_termination_message(
    run_failing_pipeline, core_v1, kubernetes_pipeline
):
    # A bad catalog default reaches the trainer, which fails building its model.
    failed = run_failing_pipeline({"defaults.channels": -1})
    failure = assert_failed_cleanly(failed, "trainer-exit", "exited with code 1", "trainyard-trainer: error:")
    assert failure.retryable
    # The trainer's lines came from the kubelet's termination message (FallbackToLogsOnError).
    assert "last log lines (the kubelet's termination message):" in failed.log
    assert "negative dimension" in failed.log


@pytest.mark.kubernetes
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_pod_deleted_mid_training_fails_the_task_as_evicted(pipeline_env, run_failing_pipeline, core_v1):
    namespace = pipeline_env.team_namespaces["default"]
    deleted: list[str] = []
    specs: list[str] = []  # the pod as the API server held it, to scan for secrets

    def delete_once_running() -> None:
        deadline = time.monotonic() + POD_RUNNING_TIMEOUT_S
        while time.monotonic() < deadline and not deleted:
            for pod in core_v1.list_namespaced_pod(namespace, label_selector="trainyard.io/algorithm=digits-cnn").items:
                statuses = pod.status.container_statuses or []
                if any(s.name == "base" and s.state.running for s in statuses):
                    specs.append(json.dumps(core_v1.api_client.sanitize_for_serialization(pod)))
                    core_v1.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
                    deleted.append(pod.metadata.name)
                    return
            time.sleep(0.5)

    deleter = threading.Thread(target=delete_once_running, daemon=True)
    deleter.start()
    # No retry (the fixture's default): with one, the next pod resumes and the run succeeds
    # (test_resume_after_pod_delete.py).
    failed = run_failing_pipeline()
    deleter.join(timeout=10)
    assert deleted, "the trainer pod never ran"
    failure = assert_failed_cleanly(failed, "evicted", deleted[0], "deleted while the trainer ran")
    assert failure.retryable
    # The running pod named its credentials only by Secret reference.
    assert '"secretKeyRef"' in specs[0] and pipeline_env.store.minio_endpoint in specs[0]
    for secret in pipeline_env.secret_values():
        assert secret not in specs[0] and secret not in failed.log


@pytest.mark.kubernetes
def test_no_secret_appears_in_pod_specs_events_or_logs_of_the_team_namespace(kubernetes_pipeline, core_v1, team_namespaces):
    """Run after the cases above (file order): every pod and event they left is scanned."""
    from tests.kubernetes.pods import pod_log

    secrets = kubernetes_pipeline.secret_values()
    texts = []
    for namespace in team_namespaces.values():
        for pod in core_v1.list_namespaced_pod(namespace).items:
            texts.append(json.dumps(core_v1.api_client.sanitize_for_serialization(pod)))
            for container in pod.spec.containers:
                try:
                    texts.append(pod_log(core_v1, namespace, pod.metadata.name, container.name))
                except Exception:  # noqa: BLE001 - a container that never started has no log
                    pass
        texts.extend(json.dumps(core_v1.api_client.sanitize_for_serialization(event))
                     for event in core_v1.list_namespaced_event(namespace).items)
    scanned = "\n".join(texts)
    assert "trainer pod" in scanned or "train-digits-cnn" in scanned  # the failure cases' events are there
    for secret in secrets:
        assert secret not in scanned
