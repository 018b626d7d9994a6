"""The Kubernetes executor for in-task trainer runs (re-scoring a champion in `evaluate`):
the same pod TrainerPodOperator submits, run through the provider's hook and PodManager,
so training code never runs on the Airflow worker itself.

It finishes like the local executors (steps/executors/trainer_process.py): the trainer's
log is kept beside its outputs, and the TrainerResult is the result.json the pod stored.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import PodLaunchFailedException, add_unique_suffix
from airflow.providers.cncf.kubernetes.utils.container import container_is_succeeded, get_container_status
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodLaunchTimeoutException, PodManager
from kubernetes.client import models as k8s

from steps.catalog.catalog import AlgorithmEntry
from steps.catalog.teams import DEFAULT_TEAMS_PATH, load_teams
from steps.executors.base import TrainerFailed
from steps.executors.trainer_process import TrainerProcessOutcome, trainer_result
from steps.images.trainer_image import TrainerImage
from steps.kubernetes.pod_spec import TRAINER_CONTAINER, TRAINER_STARTUP_TIMEOUT_S, placement_for, render_trainer_pod
from steps.store import StoreSettings
from steps.training.contract import TrainerResult, TrainingJob
from steps.training.trainer_env import redact, trainer_secret_env

log = logging.getLogger(__name__)

# The kubelet's activeDeadlineSeconds normally ends an overdue pod first (and leaves a failed pod a team
# may keep); the worker's own timer, this much later, catches a pod that never got that far.
DEADLINE_GRACE_S = 30


def _catalog_algorithm(name: str) -> AlgorithmEntry:
    from operators.context import load_catalog, load_settings

    return load_catalog(load_settings()).algorithm(name)


class KubernetesPodExecutor:
    kind = "kubernetes"

    def __init__(
        self,
        *,
        team: str = "default",
        teams_path: Path = DEFAULT_TEAMS_PATH,
        algorithm: Callable[[str], AlgorithmEntry] = _catalog_algorithm,
        kubernetes_conn_id: str | None = None,
        startup_timeout_s: int = TRAINER_STARTUP_TIMEOUT_S,
        deadline_grace_s: int = DEADLINE_GRACE_S,
        poll_interval_s: float = 1.0,
    ):
        self.team = load_teams(teams_path).team(team)
        self.algorithm = algorithm
        self.kubernetes_conn_id = kubernetes_conn_id or self.team.kubernetes_conn_id
        self.startup_timeout_s = startup_timeout_s
        self.deadline_grace_s = deadline_grace_s
        self.poll_interval_s = poll_interval_s

    def trainer_pod(self, job: TrainingJob, image: TrainerImage, store: StoreSettings, deadline_s: int) -> k8s.V1Pod:
        """The pod TrainerPodOperator would submit for this job: same placement rules, this call's deadline."""
        placement = placement_for(self.algorithm(job.algorithm), self.team)
        placement = placement.model_copy(update={"active_deadline_s": deadline_s})
        pod = render_trainer_pod(job, image, store, placement)
        pod.metadata.name = add_unique_suffix(name=pod.metadata.name)  # a retried task must not collide
        return pod

    def run(self, job: TrainingJob, image: TrainerImage, store: StoreSettings, *, deadline_s: int) -> TrainerResult:
        pod = self.trainer_pod(job, image, store, deadline_s)
        pod_ref = f"{pod.metadata.namespace}/{pod.metadata.name}"
        secrets = trainer_secret_env(store)
        manager = PodManager(kube_client=KubernetesHook(conn_id=self.kubernetes_conn_id).core_v1_client)
        lines: list[str] = []

        def keep_line(_container: str, message: str) -> str:
            text = redact(message, secrets)
            lines.extend(text.splitlines() or [""])
            return f"[trainer] {text}"

        deleted = threading.Event()

        def delete() -> None:
            if deleted.is_set():
                return
            deleted.set()
            try:
                manager.delete_pod(pod)
            except Exception as exc:  # the result stands; say which pod is left behind
                log.warning("could not delete trainer pod %s: %s", pod_ref, exc)

        expired = threading.Event()

        def deadline_reached() -> None:  # a hung or unschedulable pod must not hang the task
            expired.set()
            delete()

        log.info("running trainer %s (%s mode) in pod %s", job.algorithm, job.mode, pod_ref)
        manager.create_pod(pod)
        timer = threading.Timer(deadline_s + self.deadline_grace_s, deadline_reached)
        timer.start()
        remote: k8s.V1Pod | None = None
        launch_error = ""
        try:
            startup_s = min(self.startup_timeout_s, deadline_s)
            asyncio.run(
                manager.await_pod_start(
                    pod,
                    schedule_timeout=startup_s,
                    startup_timeout=startup_s,
                    # Typed int, but only ever handed to asyncio.sleep, which takes seconds as a float.
                    check_interval=self.poll_interval_s,  # type: ignore[arg-type]
                )
            )
            manager.fetch_container_logs(pod, TRAINER_CONTAINER, follow=True, log_formatter=keep_line)
            remote = manager.await_pod_completion(pod, container_name=TRAINER_CONTAINER)
        except (PodLaunchFailedException, PodLaunchTimeoutException) as exc:
            launch_error = str(exc)
            remote = _latest(manager, pod)
        except Exception:
            if not expired.is_set():  # the API failed, not the trainer: a pod nobody watches must not run on
                delete()
                raise
        finally:
            timer.cancel()

        succeeded = remote is not None and container_is_succeeded(remote, TRAINER_CONTAINER)
        if succeeded or not self.team.keep_failed_pods:
            delete()
        elif not deleted.is_set():
            log.warning("keeping failed trainer pod %s: team %r keeps failed pods", pod_ref, self.team.name)

        status = (remote.status if remote else None) or k8s.V1PodStatus()
        container = get_container_status(remote, TRAINER_CONTAINER) if remote else None
        state = (container.state if container else None) or k8s.V1ContainerState()
        if not succeeded and not state.terminated and (launch_error or not expired.is_set()):
            waiting = state.waiting
            why = f"{waiting.reason}: {waiting.message or ''}".rstrip(": ") if waiting else launch_error
            raise TrainerFailed(redact(f"trainer {job.algorithm!r} never started in pod {pod_ref}: {why}", secrets))
        if not lines and state.terminated and state.terminated.message:
            # The kubelet kept the log tail as the termination message (FallbackToLogsOnError).
            lines = redact(state.terminated.message, secrets).splitlines()
        timed_out = not succeeded and (expired.is_set() or status.reason == "DeadlineExceeded")
        if timed_out and status.reason == "DeadlineExceeded":
            where = f" (activeDeadlineSeconds={deadline_s}, pod {pod_ref})"
        elif timed_out:
            where = f" (deadline {deadline_s}s, pod {pod_ref} deleted)"
        else:
            reason = f" ({state.terminated.reason})" if state.terminated and state.terminated.reason else ""
            where = f" in pod {pod_ref}{reason}"
        exit_code = state.terminated.exit_code if state.terminated else -1
        return trainer_result(job, TrainerProcessOutcome(exit_code, timed_out, lines), store, where)


def _latest(manager: PodManager, pod: k8s.V1Pod) -> k8s.V1Pod | None:
    try:
        return manager.read_pod(pod)
    except Exception:  # deleted or unreachable: the launch error is all there is
        return None
