"""Why a trainer pod failed, as a failure kind (steps/lifecycle/run_failure.py) and one line: what the
kubelet says about the pod (evicted, past its deadline, OOM-killed, image not pulled) first, then the
trainer's own exit code and last log lines (steps/training/trainer_exit.py)."""
from __future__ import annotations

from kubernetes.client import models as k8s

from steps.training.trainer_exit import TrainerExit, classify_exit

IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def pod_failure(pod: k8s.V1Pod, container_name: str, algorithm: str, log_lines: list[str]) -> TrainerExit:
    status = pod.status or k8s.V1PodStatus()
    where = f" in pod {pod.metadata.namespace}/{pod.metadata.name}"
    if status.reason == "DeadlineExceeded":
        return TrainerExit("deadline", f"trainer {algorithm!r} exceeded its deadline{where}")
    if status.reason == "Evicted":
        return TrainerExit("evicted", f"trainer {algorithm!r} was evicted{where}: {status.message or 'no reason given'}")
    container = next((c for c in status.container_statuses or [] if c.name == container_name), None)
    state = (container.state if container else None) or k8s.V1ContainerState()
    if state.waiting is not None and state.waiting.reason in IMAGE_PULL_REASONS:
        return TrainerExit("image-pull", f"trainer image could not be pulled{where}: {state.waiting.reason}")
    terminated = state.terminated
    if terminated is None:
        return TrainerExit("trainer-exit", f"trainer {algorithm!r} never ran to an exit{where}")
    if terminated.reason == "OOMKilled":
        return TrainerExit("oom-killed", f"trainer {algorithm!r} was killed for exceeding its memory limit{where}")
    return classify_exit(algorithm, terminated.exit_code, log_lines, where=where)
