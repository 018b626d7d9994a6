"""The `train_nodes` task on Kubernetes: a multi-node run as an Indexed Job (the cncf provider's
KubernetesJobOperator) and the headless Service its pods meet through, both rendered by
steps.kubernetes.indexed_job. One pod per node; rank 0's pod hands back the TrainerResult through the
XCom sidecar, as the single-pod `train` task does. After success the Job (with its pods) and the
Service are deleted; after a failure they are kept when the team keeps failed pods, like
TrainerPodOperator's on_finish_action.
"""
from __future__ import annotations

import copy
import secrets as random_tokens
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from airflow.providers.common.compat.sdk import AirflowException
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

from operators.failure_recording import recording_failure
from operators.retry_policy import retrying_only_what_can_succeed
from operators.train_pod import SIDECAR_SECURITY_CONTEXT, finished_training, run_for_team, settings_pods_can_use
from operators.xcom import xcom_record
from steps.catalog.teams import DEFAULT_TEAMS_PATH, load_teams
from steps.kubernetes.indexed_job import (
    COMPLETION_INDEX_ANNOTATION,
    LABEL_TRAINING_JOB,
    IndexedTrainingJob,
    indexed_job_name,
    render_indexed_job,
)
from steps.kubernetes.pod_failure import api_error_line
from steps.kubernetes.pod_spec import TRAINER_CONTAINER, label_value, placement_for
from steps.lifecycle.run_failure import one_line

if TYPE_CHECKING:
    from steps.lifecycle.plan import RunPlan

POD_LOG_LINES = 200  # enough to hold torchrun's failure report below the rank's own last lines
PODS_APPEAR_TIMEOUT_S = 120


class TrainerJobFailed(AirflowException):
    """The Indexed Job failed; the message names the rank that died first and its last log lines."""


class TrainerJobOperator(KubernetesJobOperator):
    template_fields: Sequence[str] = (*KubernetesJobOperator.template_fields, "plan", "snapshot", "validation")

    def __init__(
        self,
        *,
        plan: Any,
        snapshot: Any,
        validation: Any = None,  # only orders train after validate
        team: str = "default",
        teams_path: Path = DEFAULT_TEAMS_PATH,
        task_id: str = "train_nodes",
        **kwargs: Any,
    ) -> None:
        self.team_entry = load_teams(teams_path).team(team)
        kwargs.setdefault("pool", self.team_entry.pool)
        kwargs.setdefault("kubernetes_conn_id", "kubernetes_default")
        super().__init__(
            task_id=task_id,
            completion_mode="Indexed",
            backoff_limit=0,
            wait_until_job_complete=True,
            deferrable=False,  # the Job and Service are cleaned up by this task itself, after the wait
            do_xcom_push=True,
            random_name_suffix=False,  # the Service and the rendezvous address must know the Job's exact name
            on_finish_action="keep_pod",  # the pods belong to the Job: they go when the Job is deleted
            termination_message_policy="FallbackToLogsOnError",
            log_pod_spec_on_failure=False,
            xcom_sidecar_container_security_context=SIDECAR_SECURITY_CONTEXT,
            **kwargs,
        )
        self.plan = plan
        self.snapshot = snapshot
        self.validation = validation
        self.rendered: IndexedTrainingJob | None = None

    def render(self) -> IndexedTrainingJob:
        from operators.context import load_catalog
        from steps.data.snapshot import SnapshotRef
        from steps.lifecycle.train import training_job

        run = run_for_team(self.plan, self.team_entry)
        settings = settings_pods_can_use()
        placement = placement_for(load_catalog(settings).algorithm(run.algorithm), self.team_entry)
        job = training_job(run, SnapshotRef.model_validate(xcom_record(self.snapshot)).dataset_hash)
        return render_indexed_job(
            job, run.image, settings.store, placement,
            name=indexed_job_name(job, random_tokens.token_hex(3)),
            rendezvous_timeout_s=settings.rendezvous_timeout_s,
        )

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        self.rendered = self.rendered or self.render()
        template = self.rendered.job.spec.template
        metadata = copy.deepcopy(template.metadata)
        # A Job's pod template names no namespace; without one the provider looks for the Job's pods
        # in "default" (and is refused there), not in the team namespace the Job runs in.
        metadata.namespace = self.rendered.job.metadata.namespace
        self.full_pod_spec = k8s.V1Pod(metadata=metadata, spec=copy.deepcopy(template.spec))
        return super().build_pod_request_obj(context, dry_run=dry_run)

    def build_job_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Job:
        """The rendered Job, its pod template completed by the provider (XCom sidecar, the task's labels)."""
        pod = self.build_pod_request_obj(context, dry_run=dry_run)
        self.pod_request_obj = pod
        assert self.rendered is not None
        job = copy.deepcopy(self.rendered.job)
        job.spec.template = k8s.V1PodTemplateSpec(
            metadata=k8s.V1ObjectMeta(labels=pod.metadata.labels, annotations=pod.metadata.annotations), spec=pod.spec
        )
        return job

    def get_pods(self, pod_request_obj: k8s.V1Pod, context: Any, *, exclude_checked: bool = True) -> Sequence[k8s.V1Pod]:
        """Wait until the Job controller has made a pod per node (the provider only retries at once)."""
        selector = self._build_find_pod_label_selector(context, exclude_checked=exclude_checked)
        deadline = time.monotonic() + PODS_APPEAR_TIMEOUT_S
        while True:
            pods = self.client.list_namespaced_pod(namespace=pod_request_obj.metadata.namespace, label_selector=selector).items
            if len(pods) >= self.parallelism or time.monotonic() > deadline:
                break
            time.sleep(1)
        if not pods:
            raise AirflowException(f"the Job made no pods within {PODS_APPEAR_TIMEOUT_S}s (labels {selector})")
        return sorted(pods, key=_completion_index)

    def execute(self, context: Any) -> dict:
        from operators.training_reuse import skip_if_already_trained
        from steps.lifecycle.plan import RunPlan

        # The run's own algorithm decides how many of the task's tries it may use (operators/retry_policy.py).
        with (
            retrying_only_what_can_succeed(RunPlan.model_validate(xcom_record(self.plan)).retries, context),
            recording_failure("train", context),
        ):
            skip_if_already_trained(xcom_record(self.plan), xcom_record(self.snapshot), context)  # before any Job exists
            run = run_for_team(self.plan, self.team_entry)
            self.parallelism = self.completions = run.nodes
            self.rendered = self.render()
            service = self.rendered.service
            # The Service first: node 0's name must resolve as soon as the other pods look it up.
            self.client.create_namespaced_service(namespace=service.metadata.namespace, body=service)
            try:
                xcom = super().execute(context)
            except Exception as exc:
                failure = self.describe_failure(run)
                self._finish(succeeded=False)
                # No pod of the Job ended (refused, never scheduled, ...): the provider's own error says why.
                said = api_error_line(exc) if isinstance(exc, ApiException) else one_line(str(exc))
                raise TrainerJobFailed(failure or f"the Job of trainer {run.algorithm!r} did not run: {said}") from None
            self._finish(succeeded=True)
            return self._trainer_result(xcom)

    def _trainer_result(self, xcom: Any) -> dict:
        from steps.training.contract import XCOM_RETURN_PATH

        written = [x for x in (xcom if isinstance(xcom, list) else [xcom]) if x]
        if len(written) != 1:  # rank 0's pod, and only it, writes the result
            raise AirflowException(f"expected one pod to write {XCOM_RETURN_PATH}, {len(written)} did")
        return finished_training(self.plan, self.snapshot, written[0])  # the learning curve, as a single pod's

    def _finish(self, *, succeeded: bool) -> None:
        assert self.rendered is not None
        name, namespace = self.rendered.name, self.rendered.job.metadata.namespace
        if not succeeded and self.team_entry.keep_failed_pods:
            self.log.warning("keeping failed Job and Service %s/%s: team %r keeps failed pods", namespace, name, self.team_entry.name)
            return
        for delete in (
            lambda: self.job_client.delete_namespaced_job(name=name, namespace=namespace, propagation_policy="Foreground"),
            lambda: self.client.delete_namespaced_service(name=name, namespace=namespace),
        ):
            try:
                delete()
            except Exception as exc:  # the run's outcome stands; say what is left behind
                self.log.warning("could not delete %s/%s: %s", namespace, name, exc)

    def describe_failure(self, run: RunPlan) -> str:
        """Which rank died first, from every node pod's torchrun report and log (redacted)."""
        from operators.context import load_settings
        from steps.executors.rank_failure import distributed_failure, node_log_lines
        from steps.training.trainer_env import redact, trainer_secret_env

        assert self.rendered is not None
        name, namespace = self.rendered.name, self.rendered.job.metadata.namespace
        try:
            pods = self.client.list_namespaced_pod(
                namespace=namespace, label_selector=f"{LABEL_TRAINING_JOB}={label_value(name)}"
            ).items
        except Exception as exc:  # noqa: BLE001 - the Job's own error is reported instead
            self.log.warning("could not list the pods of Job %s/%s: %s", namespace, name, exc)
            return ""
        if not any(_terminated(pod) for pod in pods):
            return ""
        logs = {_completion_index(pod): self._pod_log(pod) for pod in pods}
        exit_code = next((code for pod in pods if (code := _exit_code(pod))), 1)
        where = f" in Job {namespace}/{name}"
        try:
            secrets = trainer_secret_env(load_settings().store)
        except Exception:  # noqa: BLE001 - without the secrets the logs cannot be shown safely
            return f"trainer {run.algorithm!r} failed{where} (log tails withheld: the store settings could not be loaded)"
        return redact(str(distributed_failure(run.algorithm, run.shape, node_log_lines(logs), exit_code, where)), secrets)

    def _pod_log(self, pod: k8s.V1Pod) -> str:
        try:
            return self.client.read_namespaced_pod_log(
                name=pod.metadata.name, namespace=pod.metadata.namespace, container=TRAINER_CONTAINER, tail_lines=POD_LOG_LINES
            )
        except Exception:  # noqa: BLE001 - deleted or unreachable: the termination message keeps the tail
            terminated = _terminated(pod)
            return (terminated.message if terminated else "") or ""


def _completion_index(pod: k8s.V1Pod) -> int:
    return int((pod.metadata.annotations or {}).get(COMPLETION_INDEX_ANNOTATION, 0))


def _terminated(pod: k8s.V1Pod) -> k8s.V1ContainerStateTerminated | None:
    for status in (pod.status.container_statuses if pod.status else None) or []:
        if status.name == TRAINER_CONTAINER and status.state and status.state.terminated:
            return status.state.terminated
    return None


def _exit_code(pod: k8s.V1Pod) -> int:
    terminated = _terminated(pod)
    return terminated.exit_code if terminated else 0
