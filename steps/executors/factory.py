"""Pick the local executor a deployment configured (Kubernetes runs through its operator)."""
from __future__ import annotations

from steps.executors.base import TrainerExecutor
from steps.training.launch import DEFAULT_RENDEZVOUS_TIMEOUT_S


def make_executor(
    kind: str, *, container_runtime: str = "podman", rendezvous_timeout_s: int = DEFAULT_RENDEZVOUS_TIMEOUT_S
) -> TrainerExecutor:
    if kind == "subprocess":
        from steps.executors.subprocess_executor import SubprocessExecutor

        return SubprocessExecutor()
    if kind == "container":
        from steps.executors.container_executor import ContainerExecutor

        return ContainerExecutor(runtime=container_runtime, rendezvous_timeout_s=rendezvous_timeout_s)
    if kind == "kubernetes":
        raise ValueError(
            "the kubernetes executor lives in operators/ (TrainerPodOperator for training, "
            "KubernetesPodExecutor for re-scoring): it needs the Airflow provider, which steps/ never imports"
        )
    raise ValueError(f"executor {kind!r} is unknown; use subprocess, container or kubernetes")
