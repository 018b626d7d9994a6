"""Pick the local executor a deployment configured (Kubernetes runs through its operator)."""
from __future__ import annotations

from steps.executors.base import TrainerExecutor


def make_executor(kind: str, *, container_runtime: str = "podman") -> TrainerExecutor:
    if kind == "subprocess":
        from steps.executors.subprocess_executor import SubprocessExecutor

        return SubprocessExecutor()
    if kind == "container":
        from steps.executors.container_executor import ContainerExecutor

        return ContainerExecutor(runtime=container_runtime)
    if kind == "kubernetes":
        raise ValueError(
            "the kubernetes executor lives in operators/ (TrainerPodOperator for training, "
            "KubernetesPodExecutor for re-scoring): it needs the Airflow provider, which steps/ never imports"
        )
    raise ValueError(f"executor {kind!r} is unknown; use subprocess, container or kubernetes")
