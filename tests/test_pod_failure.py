"""Why a trainer pod failed, from the pod the kubelet reports, the trainer's exit code and last log
lines, or the API server's refusal: kinds decide whether the train task retries.

The real cluster tier (tests/kubernetes/test_failure_modes.py) produces the pod statuses and
refusals these pods and errors copy; this file checks the classification without a cluster.
"""
from __future__ import annotations

import json

import pytest
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

from steps.kubernetes.pod_failure import api_error_line, deleted_pod_failure, pod_failure, quota_refusal
from steps.lifecycle.run_failure import RETRYABLE_BY_KIND


def _pod(*, reason=None, message=None, terminated=None, waiting=None) -> k8s.V1Pod:
    state = k8s.V1ContainerState(terminated=terminated, waiting=waiting)
    status = k8s.V1ContainerStatus(name="base", state=state, ready=False, restart_count=0, image="x", image_id="x")
    container = k8s.V1Container(
        name="base", image="127.0.0.1:5000/trainyard/digits-cnn@sha256:" + "0" * 64,
        resources=k8s.V1ResourceRequirements(limits={"memory": "48Mi"}),
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="train-1", namespace="trainyard", labels={"trainyard.io/algorithm": "digits-cnn"}),
        spec=k8s.V1PodSpec(containers=[container], active_deadline_seconds=3),
        status=k8s.V1PodStatus(phase="Failed", reason=reason, message=message, container_statuses=[status]),
    )


def _exited(code, reason="Error", message=None):
    return k8s.V1ContainerStateTerminated(exit_code=code, reason=reason, message=message)


@pytest.mark.parametrize(
    "pod,log,kind,says",
    [
        (_pod(reason="Evicted", message="The node was low on resource: memory."), [], "evicted", "was evicted"),
        (_pod(reason="DeadlineExceeded", terminated=_exited(137)), [], "deadline", "activeDeadlineSeconds=3"),
        (_pod(terminated=_exited(137, "OOMKilled")), [], "oom-killed", "memory limit 48Mi"),
        (_pod(waiting=k8s.V1ContainerStateWaiting(reason="ImagePullBackOff")), [], "image-pull", "could not be pulled"),
        (_pod(terminated=_exited(3)), ["trainyard-trainer: error: diverged: training loss is nan at epoch 1, batch 2 of 9 "
                                        "(learning rate 10); a retry would repeat it"], "diverged", "loss is nan at epoch 1"),
        (_pod(terminated=_exited(4)), ["trainyard-trainer: error: stalled: no progress for 601 s (stall_timeout_s=600) "
                                        "while training epoch 2, after batch 7"], "stalled", "no progress for 601 s"),
        (_pod(terminated=_exited(1)), ["Timeout (0:10:05)!", "Thread 0x01 (most recent call first):"], "stalled",
         "stuck in native code"),
        (_pod(terminated=_exited(1)), ["trainyard-trainer: error: ObjectNotFound: runs/x not found"], "trainer-exit",
         "exited with code 1: trainyard-trainer: error: ObjectNotFound"),
    ],
)
def test_a_failed_pod_gets_the_kind_and_reason_the_kubelet_and_trainer_give(pod, log, kind, says):
    ended = pod_failure(pod, "base", log)
    assert ended.kind == kind
    assert says in ended.reason and "\n" not in ended.reason


def test_the_termination_message_is_the_log_when_no_lines_are_given():
    """The kubelet keeps the log tail as the termination message: a diverged trainer is found there."""
    kept = "epoch 1/6 train_loss=nan\ntrainyard-trainer: error: diverged: training loss is nan at epoch 1, batch 2 of 9"
    ended = pod_failure(_pod(terminated=_exited(3, message=kept)), "base")
    assert ended.kind == "diverged" and not RETRYABLE_BY_KIND[ended.kind]
    assert "trainer 'digits-cnn' diverged: training loss is nan at epoch 1" in ended.reason


def test_a_pod_deleted_mid_training_is_an_eviction_and_retryable():
    ended = deleted_pod_failure(_pod())
    assert ended.kind == "evicted" and RETRYABLE_BY_KIND["evicted"]
    assert "trainyard/train-1 was deleted while the trainer ran" in ended.reason


def _forbidden(message: str) -> ApiException:
    error = ApiException(status=403, reason="Forbidden")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


@pytest.mark.parametrize(
    "requested,retryable",
    [("limits.memory=40Gi", False), ("limits.memory=8Gi", True)],  # over the whole quota / over what is left
)
def test_a_quota_refusal_names_the_quota_and_is_retried_only_if_waiting_can_help(requested, retryable):
    message = (f'pods "train-x" is forbidden: exceeded quota: trainyard-training, requested: {requested}, '
               "used: limits.memory=30Gi, limited: limits.memory=32Gi")
    refusal = quota_refusal(_forbidden(message), "trainyard")
    assert refusal is not None and refusal.kind == "quota-exceeded" and refusal.retryable is retryable
    assert refusal.reason == f"trainer pod refused in namespace trainyard: {message[message.index('exceeded quota'):]}"


def test_other_api_errors_are_not_quota_refusals():
    assert quota_refusal(_forbidden('pods "x" is forbidden: violates PodSecurity "restricted"'), "trainyard") is None
    assert quota_refusal(ApiException(status=500, reason="boom"), "trainyard") is None


def test_an_api_refusal_is_one_line_with_its_status_and_message_not_the_http_dump():
    message = 'pods is forbidden: User "system:serviceaccount:airflow:airflow-worker-default" cannot list resource "pods"'
    error = _forbidden(message)
    assert "HTTP response body" in str(error)  # what the exception itself prints, over several lines
    assert api_error_line(error) == f"403 Forbidden: {message}"
    assert api_error_line(ApiException(status=500, reason="Internal Server Error")) == "500 Internal Server Error"
