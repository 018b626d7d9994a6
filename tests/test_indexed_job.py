"""A multi-node run on Kubernetes at the manifest level: the Indexed Job and headless Service as the
API server would receive them, rendered by TrainerJobOperator's own build_job_request_obj. No cluster
answers here (the single-node cluster tier, tests/kubernetes/, runs Jobs for real)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

from tests.test_pod_spec import (
    ACCESS_KEY,
    DIGEST,
    SECRET_KEY,
    SNAPSHOT,
    make_plan,
    minio_env,  # noqa: F401 - the fixture, used through pytestmark
)

pytestmark = pytest.mark.usefixtures("minio_env")  # the worker's store: MinIO, credentials never inline
TWO_BY_FOUR = {"nodes": 2, "procs_per_node": 4}


def operator(**plan_changes):
    from operators.train_job import TrainerJobOperator

    return TrainerJobOperator(plan={**make_plan(), **TWO_BY_FOUR, **plan_changes}, snapshot=SNAPSHOT)


def submitted(op=None) -> dict:
    """The Job as the API server would receive it (camelCase JSON)."""
    op = op or operator()
    return ApiClient().sanitize_for_serialization(op.build_job_request_obj(dry_run=True))


def flags(command: list[str]) -> dict[str, str]:
    start = command.index("torch.distributed.run") + 1
    return dict(zip(command[start:-1:2], command[start + 1 : -1 : 2], strict=True))


def test_one_pod_per_node_as_an_indexed_job_that_fails_with_its_first_failed_node():
    job = submitted()
    assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 2
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 3600
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_each_pod_runs_torchrun_as_node_completion_index_meeting_node_zero_through_the_service():
    op = operator()
    job = submitted(op)
    name = job["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    trainer = next(c for c in pod["containers"] if c["name"] == "base")
    command = trainer["command"]
    assert command[:3] == ["/opt/venv/bin/python", "-m", "torch.distributed.run"]
    assert command[-1] == "/app/images/digits-cnn/train.py"
    assert flags(command) == {
        "--nnodes": "2", "--nproc-per-node": "4", "--max-restarts": "0", "--tee": "3",
        "--log-line-prefix-template": "[rank${rank}]: ", "--rdzv-backend": "static",
        "--node-rank": "$(JOB_COMPLETION_INDEX)", "--master-addr": f"{name}-0.{name}", "--master-port": "29500",
        "--rdzv-conf": "timeout=300",  # settings.rendezvous_timeout_s
    }
    env = {e["name"]: e for e in trainer["env"]}
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    assert pod["subdomain"] == name == op.rendered.service.metadata.name
    assert trainer["ports"] == [{"containerPort": 29500, "name": "rendezvous"}]


def test_the_headless_service_selects_exactly_this_jobs_pods_and_publishes_them_before_ready():
    op = operator()
    template_labels = submitted(op)["spec"]["template"]["metadata"]["labels"]
    service = ApiClient().sanitize_for_serialization(op.rendered.service)
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= template_labels.items()
    assert service["spec"]["ports"] == [{"name": "rendezvous", "port": 29500, "targetPort": 29500}]
    assert service["metadata"]["namespace"] == "trainyard"


def test_every_node_pod_is_the_hardened_single_pod_template():
    from tests.test_pod_spec import rendered

    single = rendered()
    node = submitted()["spec"]["template"]
    single_trainer = next(c for c in single["spec"]["containers"] if c["name"] == "base")
    node_trainer = next(c for c in node["spec"]["containers"] if c["name"] == "base")
    for key in ("image", "securityContext", "resources", "volumeMounts", "terminationMessagePolicy"):
        assert node_trainer[key] == single_trainer[key], key
    for key in ("securityContext", "volumes", "automountServiceAccountToken", "enableServiceLinks"):
        assert node["spec"][key] == single["spec"][key], key
    secret_refs = [e for e in node_trainer["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert [e["name"] for e in secret_refs] == ["TRAINYARD_MINIO_ACCESS_KEY", "TRAINYARD_MINIO_SECRET_KEY"]
    assert node_trainer["image"].endswith(f"@{DIGEST}")
    sidecar = next(c for c in node["spec"]["containers"] if c["name"] != "base")  # rank 0 returns its result here
    assert sidecar["securityContext"]["runAsNonRoot"] is True


def test_no_secret_value_appears_in_the_job_or_the_service():
    op = operator()
    whole = json.dumps(submitted(op)) + json.dumps(ApiClient().sanitize_for_serialization(op.rendered.service))
    assert ACCESS_KEY not in whole and SECRET_KEY not in whole


def test_job_names_stay_dns_labels_that_leave_room_for_the_pod_index():
    from steps.kubernetes.indexed_job import MAX_JOB_NAME_CHARS, indexed_job_name
    from steps.training.contract import TrainingJob

    job = TrainingJob.model_validate({
        "run_id": "x" * 120, "algorithm": "a-very-long-algorithm-name-that-goes-on-and-on", "dataset_name": "d",
        "dataset_hash": "0" * 64, "dataset_snapshot_key": "k", "output_prefix": "p", "seed": 1, "split_seed": 1,
        "test_fraction": 0.2, "hyperparameters": {}, "num_threads": 1, "nodes": 16,
    })
    name = indexed_job_name(job, "abc123")
    assert len(f"{name}-15") <= 63 and len(name) <= MAX_JOB_NAME_CHARS and name[0].isalpha() and name.endswith("-abc123")


# --- a failed Job: which rank died first, from each node pod's log ---------------------------------


class NodePods:
    """CoreV1Api's two read calls the failure description makes, answered from real torchrun logs."""

    def __init__(self, logs_by_node: dict[int, str], exit_codes: dict[int, int]):
        self.logs_by_node, self.exit_codes = logs_by_node, exit_codes

    def list_namespaced_pod(self, namespace, label_selector="", **_):
        pods = [
            k8s.V1Pod(
                metadata=k8s.V1ObjectMeta(
                    name=f"node-{i}", namespace=namespace,
                    annotations={"batch.kubernetes.io/job-completion-index": str(i)},
                ),
                status=k8s.V1PodStatus(phase="Failed", container_statuses=[
                    k8s.V1ContainerStatus(
                        name="base", image="i", image_id="i", ready=False, restart_count=0,
                        state=k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=code)),
                    )
                ]),
            )
            for i, code in self.exit_codes.items()
        ]
        return k8s.V1PodList(items=pods)

    def read_namespaced_pod_log(self, name, namespace, container=None, tail_lines=None, **_):
        return self.logs_by_node[int(name.split("-")[1])]


def test_a_failed_job_names_the_first_rank_to_die_with_its_node_and_log_lines(monkeypatch):
    from pathlib import Path

    from operators.train_job import TrainerJobOperator
    from steps.lifecycle.plan import RunPlan

    captured = (Path(__file__).parent / "data" / "torchrun" / "two_nodes_rank1_killed.log").read_text().splitlines()
    by_node = {n: "\n".join(line.split(" ", 1)[1] for line in captured if line.startswith(f"[node{n}] ")) for n in (0, 1)}
    op = operator(nodes=2, procs_per_node=1)
    op.rendered = op.render()
    monkeypatch.setattr(TrainerJobOperator, "client", NodePods(by_node, {0: 1, 1: 1}))
    message = op.describe_failure(RunPlan.model_validate(op.plan))
    assert message.startswith(
        f"trainer 'digits-cnn': rank 1 of 2 (node 1, local rank 0) exited with code -9 (SIGKILL) in Job "
        f"trainyard/{op.rendered.name}; the whole 2×1 run failed with it; last log lines of rank 1:"
    )
    assert message.endswith("[rank1]: rank1 about to die")


def test_on_kubernetes_a_branch_picks_the_pod_or_the_indexed_job_and_evaluate_takes_either_result():
    code = (
        "from trainyard.local_airflow import configure_airflow_env, load_dag; configure_airflow_env(); "
        "d = load_dag('training_pipeline'); "
        "print('UP', sorted(d.get_task('train_result').upstream_task_ids)); "
        "print('BRANCH', sorted(d.get_task('train_on').downstream_task_ids)); "
        "print('EVAL', sorted(d.get_task('evaluate').upstream_task_ids)); "
        "print('JOB', type(d.get_task('train_nodes')).__name__, d.get_task('train_nodes').pool)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "TRAINYARD_EXECUTOR": "kubernetes"})
    assert "UP ['train', 'train_nodes']" in out.stdout
    assert "BRANCH ['train', 'train_nodes']" in out.stdout
    assert "EVAL ['plan', 'train_result']" in out.stdout
    assert "JOB TrainerJobOperator trainyard-default" in out.stdout


def test_a_multi_node_runs_result_is_checked_and_gets_its_learning_curve_like_a_single_pods(tmp_path, monkeypatch):
    from steps.lifecycle.plan import RunPlan
    from steps.store.local import LocalStore
    from steps.training.contract import EpochRecord, TrainerResult, epochs_jsonl

    monkeypatch.setenv("TRAINYARD_STORE", "local")  # the store rank 0's pod wrote metrics.jsonl to
    monkeypatch.setenv("TRAINYARD_STORE_ROOT", str(tmp_path / "store"))
    store = LocalStore(tmp_path / "store")
    op = operator()
    layout = RunPlan.model_validate(op.plan).layout.train
    store.put_bytes(layout.metrics, epochs_jsonl([EpochRecord(epoch=e, train_loss=1 / e, test_macro_f1=e / 3, wall_time_s=1)
                                                  for e in (1, 2, 3)]))
    metrics = {"accuracy": 0.9, "macro_f1": 0.9, "loss": 0.3, "confusion_matrix": [[1]], "n_examples": 1}
    written = TrainerResult(run_id="r", algorithm="digits-cnn", mode="train", dataset_hash=SNAPSHOT["dataset_hash"],
                            eval_set_hash="e" * 64, metrics=metrics, weights_key=layout.weights, weights_sha256="f" * 64,
                            epochs_completed=3, wall_time_s=1.0, torch_version="2", num_threads=1, device="cpu",
                            world_size=8, backend="gloo").model_dump(mode="json")

    assert op._trainer_result([None, written]) == written  # rank 0's pod alone wrote it
    assert store.get_bytes(layout.learning_curve).startswith(b"\x89PNG")

    with pytest.raises(RuntimeError, match="trainer reports world size 2, the run asked for 2 nodes × 4"):
        op._trainer_result([{**written, "world_size": 2}])
