"""TrainerPodOperator's guards that the real tier (tests/kubernetes, make test-kubernetes)
does not reach: a kept failed pod, a result missing or for another dataset, a deferred pod
past its deadline, a diverged trainer that is not retried, the learning curve of a finished pod.

The real tier runs the success, failure and deferrable paths on a real cluster; these few stay
here, fast and in every `make test`, with a stand-in at the API boundary: the real operator,
hook, PodManager and trigger run, and only CoreV1Api's HTTP methods (plus the exec websocket
the XCom sidecar is read through) answer from FakeCluster, which plays the kubelet's part.
A pod that succeeds has written its metrics into a real MinIO (`cluster_with_store`), from which
the operator draws the run's learning curve, as it does on a real cluster.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client import CoreV1Api
from kubernetes.client import models as k8s

from tests.test_pod_spec import ACCESS_KEY, DATASET_HASH, RUN_KEY, SECRET_KEY, SNAPSHOT, make_plan

SIDECAR = "airflow-xcom-sidecar"
EMPTY_XCOM = "__airflow_xcom_result_empty__"

# An unreachable server: the hook builds a real client from this, but every call is answered by FakeCluster.
KUBE_CONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "nowhere", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "airflow", "user": {"token": "not-a-real-token"}}],
    "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "airflow"}}],
    "current-context": "nowhere",
}


def trainer_result(**changes) -> dict:
    result = {
        "run_id": RUN_KEY,
        "algorithm": "digits-cnn",
        "mode": "train",
        "dataset_hash": DATASET_HASH,
        "eval_set_hash": "ef" * 32,
        "metrics": {"accuracy": 0.93, "macro_f1": 0.92, "loss": 0.21, "confusion_matrix": [[5, 0], [1, 4]], "n_examples": 10},
        "weights_key": f"runs/{RUN_KEY}/train/weights.safetensors",
        "weights_sha256": "01" * 32,
        "train_examples": 40,
        "epochs_completed": 2,
        "status": "completed",
        "resumed": None,
        "stopped": None,
        "wall_time_s": 3.5,
        "torch_version": "2.15.0",
        "num_threads": 1,
        "device": "cpu",
        "world_size": 1,
        "backend": "none",
    }
    return {**result, **changes}


class FakeLog:
    """What read_namespaced_pod_log answers with _preload_content=False."""

    def __init__(self, text: str):
        self.data = text.encode()

    def stream(self, amt=None, decode_content=True):
        yield self.data

    def __iter__(self):
        return iter(self.data.splitlines(keepends=True))


@dataclass
class FakeCluster:
    """One namespace's worth of API server + kubelet; the pod has already run when first read."""

    outcome: str = "succeeded"  # succeeded | failed | deadline | unpullable
    log_lines: list[str] = field(default_factory=list)
    xcom: dict | None = None
    created: list[dict] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    labels: dict[str, dict] = field(default_factory=dict)
    sidecar_killed: bool = False
    store: object = None  # what a succeeding trainer wrote into (cluster_with_store)
    secrets: tuple[str, ...] = ()

    # --- CoreV1Api ---
    def create_namespaced_pod(self, body, namespace, **_):
        assert body["metadata"]["namespace"] == namespace
        self.created.append(body)
        self.labels[body["metadata"]["name"]] = dict(body["metadata"]["labels"])
        return self._pod(body["metadata"]["name"])

    def read_namespaced_pod(self, name, namespace, **_):
        return self._pod(name)

    def list_namespaced_pod(self, namespace, label_selector="", **_):
        return k8s.V1PodList(items=[self._pod(n) for n in self.labels if n not in self.deleted and _selects(label_selector, self.labels[n])])

    def patch_namespaced_pod(self, name, namespace, body, **_):
        self.labels[name].update(body["metadata"]["labels"])

    def delete_namespaced_pod(self, name, namespace, **_):
        self.deleted.append(name)

    def list_namespaced_event(self, namespace, **_):
        return k8s.CoreV1EventList(items=[], metadata=k8s.V1ListMeta())

    def read_namespaced_pod_log(self, name, namespace, container=None, tail_lines=None, timestamps=False, _preload_content=True, **_):
        lines = self.log_lines[-tail_lines:] if tail_lines else self.log_lines
        if timestamps:
            lines = [f"2026-11-24T08:00:0{i % 10}.000000000Z {line}" for i, line in enumerate(lines)]
        text = "".join(line + "\n" for line in lines)
        return text if _preload_content else FakeLog(text)

    # --- the exec websocket the provider reads return.json through, and kills the sidecar with ---
    def exec_stream(self, _api_method, name, namespace, *, container, command, **_):
        assert container == SIDECAR
        if command == ["/bin/sh"]:
            self.sidecar_killed = True
        return FakeExec("" if command == ["/bin/sh"] else (json.dumps(self.xcom) if self.xcom else EMPTY_XCOM))

    # --- the kubelet ---
    def _pod(self, name: str) -> k8s.V1Pod:
        request = next(p for p in self.created if p["metadata"]["name"] == name)
        finished = datetime.now(UTC) - timedelta(seconds=1)
        if self.outcome == "unpullable":
            waiting = k8s.V1ContainerState(
                waiting=k8s.V1ContainerStateWaiting(reason="ErrImagePull", message="manifest unknown: manifest unknown")
            )
            base = k8s.V1ContainerStatus(name="base", state=waiting, ready=False, restart_count=0, image="x", image_id="")
            return k8s.V1Pod(
                metadata=k8s.V1ObjectMeta(name=name, namespace=request["metadata"]["namespace"], labels=dict(self.labels[name])),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name=c["name"]) for c in request["spec"]["containers"]]),
                status=k8s.V1PodStatus(phase="Pending", container_statuses=[base, _running(SIDECAR)]),
            )
        exit_code, reason, phase, pod_reason = {
            "succeeded": (0, "Completed", "Succeeded", None),
            "failed": (1, "Error", "Failed", None),
            "diverged": (3, "Error", "Failed", None),  # EXIT_DIVERGED, the trainer's own exit code
            "deadline": (137, "Error", "Failed", "DeadlineExceeded"),
        }[self.outcome]
        base = _terminated("base", exit_code, reason, finished, "\n".join(self.log_lines[-80:]) if exit_code else None)
        sidecar_done = self.sidecar_killed or self.outcome == "deadline"  # the deadline kills every container
        sidecar = _terminated(SIDECAR, 0 if self.sidecar_killed else 137, "Completed", finished) if sidecar_done else _running(SIDECAR)
        return k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=name, namespace=request["metadata"]["namespace"], labels=dict(self.labels[name])),
            spec=k8s.V1PodSpec(
                containers=[k8s.V1Container(name=c["name"]) for c in request["spec"]["containers"]],
                active_deadline_seconds=request["spec"].get("activeDeadlineSeconds"),
            ),
            status=k8s.V1PodStatus(
                phase=phase if sidecar_done else "Running",
                reason=pod_reason,
                message="Pod was active on the node longer than the specified deadline" if pod_reason else None,
                container_statuses=[base, sidecar],
            ),
        )


@dataclass
class FakeExec:
    output: str

    def run_forever(self, timeout=None):
        pass

    def peek_stderr(self):
        return False

    def read_all(self):
        return self.output

    def is_open(self):
        return False

    def close(self):
        pass


def _terminated(name, exit_code, reason, finished_at, message=None):
    state = k8s.V1ContainerState(
        terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code, reason=reason, finished_at=finished_at, message=message)
    )
    return k8s.V1ContainerStatus(name=name, state=state, ready=False, restart_count=0, image="x", image_id="x")


def _running(name):
    state = k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(started_at=datetime.now(UTC)))
    return k8s.V1ContainerStatus(name=name, state=state, ready=True, restart_count=0, image="x", image_id="x")


def _selects(selector: str, labels: dict) -> bool:
    for term in filter(None, selector.split(",")):
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        else:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
    return True


@dataclass
class TaskInstanceStub:
    """Just enough of a task instance for execute(): the pod's identity labels and XCom pushes."""

    dag_id: str = "training_pipeline"
    task_id: str = "train"
    run_id: str = "manual__2026-11-24T08:00:00+00:00"
    map_index: int = -1
    try_number: int = 1
    start_date: datetime = field(default_factory=lambda: datetime.now(UTC))
    pushed: dict = field(default_factory=dict)
    upstream_results: dict = field(default_factory=dict)  # task_id -> return value, for XComArg resolution

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def xcom_pull(self, task_ids, key="return_value", default=None, map_indexes=None):
        return self.upstream_results.get(task_ids, default)


@pytest.fixture
def cluster_with_store(cluster, minio_server, monkeypatch) -> FakeCluster:
    """The store a succeeding trainer pod wrote its per-epoch metrics into (real MinIO)."""
    from steps.store.minio_store import MinioStore
    from steps.store.run_layout import RunLayout
    from steps.training.contract import EpochRecord, epochs_jsonl
    from tests.minio_server import unique_bucket_prefix

    minio_server.start()
    settings = minio_server.settings(bucket_prefix=unique_bucket_prefix())
    for name, value in {
        "TRAINYARD_MINIO_ENDPOINT": settings.minio_endpoint,
        "TRAINYARD_MINIO_ACCESS_KEY": settings.minio_access_key,
        "TRAINYARD_MINIO_SECRET_KEY": settings.minio_secret_key,
        "TRAINYARD_MINIO_BUCKET_PREFIX": settings.bucket_prefix,
    }.items():
        monkeypatch.setenv(name, value)
    cluster.store = MinioStore(settings)
    cluster.secrets = (settings.minio_access_key, settings.minio_secret_key)
    epochs = [EpochRecord(epoch=i, epochs_planned=2, train_loss=1.0 / i, test_loss=1.1 / i, test_macro_f1=0.5 + i / 5,
                          wall_time_s=1.0) for i in (1, 2)]
    cluster.store.put_bytes(RunLayout(RUN_KEY).train.metrics, epochs_jsonl(epochs))
    return cluster


@pytest.fixture
def cluster(monkeypatch) -> FakeCluster:
    fake = install_fake_cluster(monkeypatch)
    # The worker's store here is a cluster-internal name no test can reach; these tests are about the
    # pod, so the reuse lookup answers "nothing to reuse" (the lookup itself is tested on a real store
    # in tests/test_training_reuse.py, and a hit in test_a_training_already_registered_creates_no_pod).
    monkeypatch.setattr("steps.lifecycle.train.reuse_earlier_training", lambda *_args: None)
    return fake


def install_fake_cluster(monkeypatch) -> FakeCluster:
    from airflow.providers.cncf.kubernetes.utils import pod_manager

    monkeypatch.setenv("TRAINYARD_STORE", "minio")
    monkeypatch.setenv("TRAINYARD_MINIO_ENDPOINT", "minio.trainyard.svc:9000")
    monkeypatch.setenv("TRAINYARD_MINIO_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("TRAINYARD_MINIO_SECRET_KEY", SECRET_KEY)
    for team in ("default", "vision", "nlp"):  # each team's connection (config/teams.yaml kubernetes_conn_id)
        monkeypatch.setenv(
            f"AIRFLOW_CONN_KUBERNETES_{team.upper()}",
            json.dumps({"conn_type": "kubernetes", "extra": {"kube_config": KUBE_CONFIG}}),
        )
    fake = FakeCluster(
        log_lines=[f"epoch {i}/2 loss=0.{9 - i}" for i in range(1, 3)] + ["wrote result.json"],
        xcom=trainer_result(),
    )
    for method in (
        "create_namespaced_pod",
        "read_namespaced_pod",
        "list_namespaced_pod",
        "patch_namespaced_pod",
        "delete_namespaced_pod",
        "list_namespaced_event",
        "read_namespaced_pod_log",
    ):
        monkeypatch.setattr(CoreV1Api, method, lambda _api, *a, _m=method, **kw: getattr(fake, _m)(*a, **kw))
    monkeypatch.setattr(pod_manager, "kubernetes_stream", fake.exec_stream)
    return fake


def run_train_task(**kwargs):
    from operators.train_pod import TrainerPodOperator

    ti = TaskInstanceStub()
    context = {"ti": ti, "run_id": ti.run_id, "dag": None}
    operator = TrainerPodOperator(plan=make_plan(), snapshot=SNAPSHOT, startup_check_interval_seconds=0, **kwargs)
    return operator, context


@pytest.mark.minio
def test_successful_pod_returns_the_trainer_result_and_is_deleted(cluster_with_store):
    from steps.store.run_layout import RunLayout

    cluster = cluster_with_store
    operator, context = run_train_task()
    result = operator.execute(context)

    assert result == trainer_result()  # the same shape operators/train_operator.py returns
    assert result["metrics"]["macro_f1"] == 0.92
    submitted = cluster.created[0]
    assert submitted["metadata"]["namespace"] == "trainyard"
    assert submitted["spec"]["containers"][0]["image"].endswith("@sha256:" + "ab12" * 16)
    assert context["ti"].pushed["pod_namespace"] == "trainyard"
    assert cluster.deleted == [submitted["metadata"]["name"]]
    assert not any(secret in json.dumps(cluster.created) for secret in cluster.secrets)
    assert cluster.store.get_bytes(RunLayout(RUN_KEY).train.learning_curve).startswith(b"\x89PNG")


def test_a_diverged_trainer_pod_fails_the_task_without_a_retry_naming_epoch_batch_and_rate(cluster):
    from airflow.sdk.exceptions import AirflowFailException

    cluster.outcome = "diverged"
    cluster.xcom = None
    cluster.log_lines = ["epoch 1/2 train_loss=2.3", "trainyard-trainer: error: diverged: training loss is nan at "
                         "epoch 2, batch 5 of 22 (learning rate 10); a retry would repeat it: lower the learning rate"]
    operator, context = run_train_task()

    with pytest.raises(AirflowFailException) as failed:  # Airflow does not retry this one, whatever `retries` says
        operator.execute(context)

    first_line = str(failed.value).splitlines()[0]
    assert first_line.startswith("trainer 'digits-cnn' diverged: training loss is nan at epoch 2, batch 5 of 22 (learning rate 10)")
    assert "not retried: a diverged failure would repeat" in first_line
    assert failed.value.__cause__.failure_kind == "diverged"


def test_failed_pod_is_kept_when_the_team_keeps_failed_pods(cluster):
    from operators.train_pod import TrainerPodFailed

    cluster.outcome = "failed"
    operator, context = run_train_task(keep_failed_pods=True)
    with pytest.raises(TrainerPodFailed):
        operator.execute(context)
    assert cluster.deleted == []
    assert cluster.labels[cluster.created[0]["metadata"]["name"]]["already_checked"] == "True"





def test_pod_that_wrote_no_result_fails_the_task(cluster):
    cluster.xcom = None
    operator, context = run_train_task()
    with pytest.raises(Exception, match="wrote no result to /airflow/xcom/return.json"):
        operator.execute(context)


def test_result_for_another_dataset_is_refused(cluster):
    cluster.xcom = trainer_result(dataset_hash="99" * 32)
    operator, context = run_train_task()
    with pytest.raises(Exception, match="trainer reports dataset 999999999999, expected cd34cd34cd34"):
        operator.execute(context)



def test_deferrable_run_past_its_deadline_fails_with_the_reason(cluster):
    from airflow.sdk.exceptions import TaskDeferred

    from operators.train_pod import TrainerPodFailed

    cluster.outcome = "deadline"
    operator, context = run_train_task(deferrable=True)
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    name = cluster.created[0]["metadata"]["name"]
    resumed, context = run_train_task(deferrable=True)
    with pytest.raises(TrainerPodFailed, match="ran past its deadline: the kubelet stopped it at activeDeadlineSeconds=3600"):
        resumed.trigger_reentry(context, {"status": "failed", "name": name, "namespace": "trainyard", "message": "Pod failed"})


def test_a_training_already_registered_creates_no_pod_and_names_the_version(monkeypatch, tmp_path):
    from airflow.sdk.exceptions import AirflowSkipException

    from operators.training_reuse import REUSED_XCOM_KEY
    from steps.data.snapshot import Snapshot
    from steps.lifecycle.plan import RunPlan
    from steps.store.local import LocalStore
    from tests.test_register import register, trainer_outputs

    cluster = install_fake_cluster(monkeypatch)
    # The real lookup, on a store this worker reaches: a version trained with this identity exists.
    monkeypatch.setenv("TRAINYARD_STORE", "local")
    monkeypatch.setenv("TRAINYARD_STORE_ROOT", str(tmp_path / "store"))
    store = LocalStore(tmp_path / "store")
    earlier = RunPlan.model_validate(make_plan()).model_copy(update={"run_key": "earlier-run"})
    register(store, earlier, Snapshot(dataset="digits", dataset_hash=DATASET_HASH, files=[]),
             trainer_outputs(store, earlier, b"weights"))
    operator, context = run_train_task()

    with pytest.raises(AirflowSkipException, match="reusing digits-digits-cnn@1"):
        operator.execute(context)

    assert cluster.created == []
    assert context["ti"].pushed[REUSED_XCOM_KEY]["version"] == 1
