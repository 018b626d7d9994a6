"""Why a trainer pod failed, read from what the cluster left: the pod's status as the kubelet
wrote it (evicted, past its deadline, OOM-killed, image not pulled) first, then the trainer's own
exit code and last log lines (diverged, stalled: steps/training/trainer_exit.py), or the API
server's refusal to create it. One line a person reads first, and the failure kind
steps/lifecycle/run_failure.py records.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence

from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ConfigDict

from steps.catalog.teams import quantity
from steps.kubernetes.pod_spec import LABEL_ALGORITHM
from steps.training.trainer_exit import classify_exit

IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
# The trainer runtime prefixes its fatal error so (steps/training/runtime.py).
TRAINER_ERROR_PREFIX = "trainyard-trainer: error:"
_QUOTA_TERM_RE = re.compile(r"([\w./-]+)=([0-9.]+[A-Za-z]*)")


class PodFailure(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str  # a key of steps.lifecycle.run_failure.RETRYABLE_BY_KIND
    reason: str  # one line
    retryable: bool | None = None  # None: the kind's default


def _ref(pod: k8s.V1Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _container_status(pod: k8s.V1Pod, container: str) -> k8s.V1ContainerStatus | None:
    statuses = (pod.status.container_statuses if pod.status else None) or []
    return next((status for status in statuses if status.name == container), None)


def _memory_limit(pod: k8s.V1Pod, container: str) -> str:
    spec = next((c for c in (pod.spec.containers if pod.spec else []) if c.name == container), None)
    limits = (spec.resources.limits if spec and spec.resources else None) or {}
    return limits.get("memory", "?")


def trainer_error_line(text: str) -> str:
    """The trainer's own fatal line if it wrote one, else its last non-empty line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if TRAINER_ERROR_PREFIX in line]
    return (errors or lines or [""])[-1]


def deleted_pod_failure(pod: k8s.V1Pod) -> PodFailure:
    return PodFailure(
        kind="evicted",
        reason=f"trainer pod {_ref(pod)} was deleted while the trainer ran (evicted, drained or deleted by hand)",
    )


def pod_failure(pod: k8s.V1Pod, container: str, log_lines: Sequence[str] = ()) -> PodFailure:
    """Classify a pod whose `container` did not succeed, from its latest status and the trainer's
    last log lines (by default the kubelet's termination message, which holds the log tail)."""
    status = pod.status or k8s.V1PodStatus()
    state = getattr(_container_status(pod, container), "state", None) or k8s.V1ContainerState()
    if status.reason == "DeadlineExceeded":
        deadline_s = pod.spec.active_deadline_seconds if pod.spec else None
        return PodFailure(
            kind="deadline",
            reason=f"trainer pod {_ref(pod)} ran past its deadline: the kubelet stopped it at "
            f"activeDeadlineSeconds={deadline_s}",
        )
    if status.reason == "Evicted":
        return PodFailure(kind="evicted", reason=f"trainer pod {_ref(pod)} was evicted: {status.message or ''}".rstrip(": "))
    terminated, waiting = state.terminated, state.waiting
    if terminated and terminated.reason == "OOMKilled":
        return PodFailure(
            kind="oom-killed",
            reason=f"trainer pod {_ref(pod)} was OOM-killed: it used more than its memory limit "
            f"{_memory_limit(pod, container)} (exit code {terminated.exit_code})",
        )
    if waiting and waiting.reason in IMAGE_PULL_REASONS:
        image = next((c.image for c in pod.spec.containers if c.name == container), "?") if pod.spec else "?"
        return PodFailure(
            kind="image-pull",
            reason=f"trainer image {image} could not be pulled ({waiting.reason}): {waiting.message or ''}".rstrip(": "),
            # A missing or malformed reference stays missing; only a registry outage may pass.
            retryable=waiting.reason == "ImagePullBackOff" and "notfound" not in (waiting.message or "").lower().replace(" ", ""),
        )
    if waiting:  # never started for another reason: CreateContainerConfigError (a missing Secret), ...
        return PodFailure(
            kind="error",
            reason=f"trainer pod {_ref(pod)} never started: {waiting.reason}: {waiting.message or ''}".rstrip(": "),
        )
    if terminated:
        algorithm = ((pod.metadata.labels if pod.metadata else None) or {}).get(LABEL_ALGORITHM, "trainer")
        lines = list(log_lines) or (terminated.message or "").splitlines()
        ended = classify_exit(algorithm, terminated.exit_code, lines, where=f" in pod {_ref(pod)}")
        if ended.kind != "trainer-exit":  # diverged, stalled: the trainer's exit code says which
            return PodFailure(kind=ended.kind, reason=ended.reason)
        said = trainer_error_line("\n".join(lines))
        return PodFailure(
            kind="trainer-exit",
            reason=f"trainer in pod {_ref(pod)} exited with code {terminated.exit_code}"
            + (f": {said}" if said else f" ({terminated.reason})"),
        )
    return PodFailure(kind="error", reason=f"trainer pod {_ref(pod)} failed (phase {status.phase})")


def api_error_line(error: ApiException) -> str:
    """The API server's refusal in one line ("403 Forbidden: pods is forbidden: ..."), not the HTTP dump."""
    try:
        message = json.loads(error.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(error.body or "")
    line = f"{error.status} {error.reason}" + (f": {message}" if message else "")
    return " ".join(line.split())


def quota_refusal(error: ApiException, namespace: str) -> PodFailure | None:
    """The API server's "exceeded quota" refusal of a pod, naming the quota; None for other errors."""
    if error.status != 403:
        return None
    try:
        message = json.loads(error.body or "{}").get("message", "")
    except ValueError:
        message = str(error.body or "")
    if "exceeded quota" not in message:
        return None
    # 'pods "train-x" is forbidden: exceeded quota: trainyard-training, requested: limits.memory=40Gi,
    #  used: limits.memory=0, limited: limits.memory=32Gi' -> keep from "exceeded quota" on.
    detail = message[message.index("exceeded quota"):]
    return PodFailure(
        kind="quota-exceeded",
        reason=f"trainer pod refused in namespace {namespace}: {detail}",
        retryable=not _asks_more_than_the_whole_quota(detail),
    )


def _asks_more_than_the_whole_quota(detail: str) -> bool:
    """True when the request alone exceeds a hard limit: no amount of waiting admits it."""
    groups = {}
    for segment in detail.split(", "):  # "requested: limits.cpu=20,limits.memory=40Gi"
        name, _, terms = segment.partition(": ")
        groups[name] = dict(_QUOTA_TERM_RE.findall(terms))
    requested, limited = groups.get("requested", {}), groups.get("limited", {})
    try:
        return any(quantity(value) > quantity(limited[name]) for name, value in requested.items() if name in limited)
    except ValueError:
        return False
