"""Waiting on pods and jobs of the real cluster, and reading their logs back.

Every wait has an explicit deadline and, when it passes, fails with what the cluster says
(phase, container states, the pod's events) rather than a bare timeout.
"""
from __future__ import annotations

import time

from kubernetes import client

# A first pod pulls its image; on a loaded 2-core machine that has taken 15 s, so allow ample.
POD_FINISH_TIMEOUT_S = 300
POLL_INTERVAL_S = 0.5
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


def restricted_security_context() -> dict:
    """A container security context Pod Security "restricted" (the team namespaces) admits."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def trainer_pods_left(core: client.CoreV1Api, namespace: str) -> list[str]:
    """Trainer pods still in the namespace: a succeeded trainer's pod is deleted, so none should be."""
    return [pod.metadata.name for pod in core.list_namespaced_pod(namespace).items if pod.metadata.name.startswith("train-")]


def describe_pod(core: client.CoreV1Api, namespace: str, name: str) -> str:
    """Phase, container states and events of a pod, for a failure message."""
    pod = core.read_namespaced_pod(name, namespace)
    lines = [f"pod {namespace}/{name}: phase {pod.status.phase}"]
    for status in pod.status.container_statuses or []:
        lines.append(f"  container {status.name}: {status.state.to_dict()}")
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    lines.extend(f"  event {event.reason}: {event.message}" for event in events)
    return "\n".join(lines)


def wait_for_pod_phase(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    phases: frozenset[str] = FINISHED_PHASES,
    timeout_s: float = POD_FINISH_TIMEOUT_S,
) -> client.V1Pod:
    """The pod once its phase is one of `phases`; AssertionError with its state at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status.phase in phases:
            return pod
        if time.monotonic() > deadline:
            raise AssertionError(
                f"pod {namespace}/{name} not in {sorted(phases)} after {timeout_s:.0f}s\n"
                + describe_pod(core, namespace, name)
            )
        time.sleep(POLL_INTERVAL_S)


def wait_for_job_condition(
    batch: client.BatchV1Api,
    namespace: str,
    name: str,
    conditions: frozenset[str] = frozenset({"Complete", "Failed"}),
    timeout_s: float = POD_FINISH_TIMEOUT_S,
) -> client.V1Job:
    """The job once one of `conditions` is True on it."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = batch.read_namespaced_job_status(name, namespace)
        reached = {c.type for c in job.status.conditions or [] if c.status == "True"}
        if reached & conditions:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {namespace}/{name} reached none of {sorted(conditions)} after {timeout_s:.0f}s: {job.status}")
        time.sleep(POLL_INTERVAL_S)


def pod_log(core: client.CoreV1Api, namespace: str, name: str, container: str | None = None) -> str:
    """The pod's log as text.

    The kubernetes 36.x client that the Airflow provider pins returns str(bytes) from
    read_namespaced_pod_log ("b'hello\\n'") unless the raw response is taken and decoded.
    """
    kwargs = {"container": container} if container else {}
    response = core.read_namespaced_pod_log(name, namespace, _preload_content=False, **kwargs)
    return response.data.decode()
