"""Why a trainer pod failed, from the pod the kubelet reports: kinds decide whether the train task retries."""
from __future__ import annotations

import pytest
from kubernetes.client import models as k8s

from steps.kubernetes.pod_failure import pod_failure


def _pod(*, reason=None, message=None, terminated=None, waiting=None) -> k8s.V1Pod:
    state = k8s.V1ContainerState(terminated=terminated, waiting=waiting)
    status = k8s.V1ContainerStatus(name="base", state=state, ready=False, restart_count=0, image="x", image_id="x")
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="train-1", namespace="trainyard"),
        status=k8s.V1PodStatus(phase="Failed", reason=reason, message=message, container_statuses=[status]),
    )


def _exited(code, reason="Error"):
    return k8s.V1ContainerStateTerminated(exit_code=code, reason=reason)


@pytest.mark.parametrize(
    "pod,log,kind,says",
    [
        (_pod(reason="Evicted", message="The node was low on resource: memory."), [], "evicted", "was evicted"),
        (_pod(reason="DeadlineExceeded", terminated=_exited(137)), [], "deadline", "exceeded its deadline"),
        (_pod(terminated=_exited(137, "OOMKilled")), [], "oom-killed", "exceeding its memory limit"),
        (_pod(waiting=k8s.V1ContainerStateWaiting(reason="ImagePullBackOff")), [], "image-pull", "could not be pulled"),
        (_pod(terminated=_exited(3)), ["trainyard-trainer: error: diverged: training loss is nan at epoch 1, batch 2 of 9 "
                                        "(learning rate 10); a retry would repeat it"], "diverged", "loss is nan at epoch 1"),
        (_pod(terminated=_exited(4)), ["trainyard-trainer: error: stalled: no progress for 601 s (stall_timeout_s=600) "
                                        "while training epoch 2, after batch 7"], "stalled", "no progress for 601 s"),
        (_pod(terminated=_exited(1)), ["Timeout (0:10:05)!", "Thread 0x01 (most recent call first):"], "stalled",
         "stuck in native code"),
        (_pod(terminated=_exited(1)), ["trainyard-trainer: error: ObjectNotFound: runs/x not found"], "trainer-exit",
         "exited with code 1 in pod trainyard/train-1: ObjectNotFound"),
    ],
)
def test_a_failed_pod_gets_the_kind_and_reason_the_kubelet_and_trainer_give(pod, log, kind, says):
    ended = pod_failure(pod, "base", "digits-cnn", log)
    assert ended.kind == kind
    assert says in ended.reason and "\n" not in ended.reason
