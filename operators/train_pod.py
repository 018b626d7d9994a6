"""The `train` task on Kubernetes: a thin KubernetesPodOperator around steps.kubernetes.pod_spec.

It turns the run's plan and snapshot into the trainer pod, lets the provider run it, and
hands back the trainer's TrainerResult (read by the XCom sidecar from return.json) in the
same shape as operators/train_operator.py, after drawing the run's learning curve. A failed pod fails
the task with why (its failure kind: a diverged trainer is not retried) and its log tail.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.container import container_is_succeeded, get_container_status
from airflow.providers.common.compat.sdk import AirflowException
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

from operators.failure_recording import plan_run_key, recording_failure
from operators.retry_policy import retrying_only_what_can_succeed
from operators.xcom import xcom_record
from steps.catalog.teams import DEFAULT_TEAMS_PATH, TeamEntry, load_teams
from steps.kubernetes.pod_failure import PodFailure, deleted_pod_failure, pod_failure, quota_refusal
from steps.kubernetes.pod_spec import (
    TRAINER_CONTAINER,
    TRAINER_STARTUP_TIMEOUT_S,
    TRAINER_UID,
    ResourceOverrides,
    placement_for,
    render_trainer_pod,
)

if TYPE_CHECKING:
    from steps.lifecycle.plan import RunPlan
    from trainyard.settings import Settings

LOG_TAIL_LINES = 40
# The XCom sidecar gets the trainer's restrictions, so the pod passes a "restricted" namespace.
SIDECAR_SECURITY_CONTEXT = k8s.V1SecurityContext(
    run_as_non_root=True,
    run_as_user=TRAINER_UID,
    allow_privilege_escalation=False,
    read_only_root_filesystem=True,
    capabilities=k8s.V1Capabilities(drop=["ALL"]),
    seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
)


class TrainerPodFailed(AirflowException):
    """The trainer pod did not succeed (or was refused): the first line says why, the rest is the
    trainer's last log lines; failure_kind and retryable go to runs/<run_key>/failures/train.json."""

    def __init__(self, message: str, failure: PodFailure):
        super().__init__(message)
        self.failure_kind = failure.kind
        if failure.retryable is not None:
            self.retryable = failure.retryable


def finished_training(plan: Any, snapshot: Any, written: dict) -> dict:
    """The TrainerResult a trainer pod (or rank 0's pod of a Job) wrote, checked against the dataset
    the run snapshotted, with its learning curve drawn: what `run_training` does for the local executors."""
    from operators.context import load_settings, open_artifact_store
    from steps.data.snapshot import SnapshotRef
    from steps.lifecycle.plan import RunPlan
    from steps.lifecycle.train import finish_training
    from steps.training.contract import TrainerResult

    settings = load_settings()
    result = finish_training(
        open_artifact_store(settings),
        RunPlan.model_validate(xcom_record(plan)),
        SnapshotRef.model_validate(xcom_record(snapshot)).dataset_hash,
        TrainerResult.model_validate(written),
        objective=settings.primary_metric,
    )
    return result.model_dump(mode="json")


def run_for_team(plan: Any, team: TeamEntry) -> RunPlan:
    """The run's plan, refused when it is for another team than the one this task trains for."""
    from steps.lifecycle.plan import RunPlan

    run = RunPlan.model_validate(xcom_record(plan))
    if run.team != team.name:
        raise AirflowException(
            f"run is for team {run.team!r}, but this task trains for team {team.name!r} "
            f"(pool {team.pool!r}); trigger the DAG wired for team {run.team!r}"
        )
    return run


def settings_pods_can_use() -> Settings:
    from operators.context import load_settings

    settings = load_settings()
    if settings.store.backend != "minio":
        raise AirflowException(
            f"the Kubernetes executor needs TRAINYARD_STORE=minio; a pod cannot reach this worker's "
            f"{settings.store.backend} store"
        )
    return settings


class TrainerPodOperator(KubernetesPodOperator):
    template_fields: Sequence[str] = (
        *KubernetesPodOperator.template_fields,
        "plan",
        "snapshot",
        "validation",
        "resource_overrides",
    )

    def __init__(
        self,
        *,
        plan: Any,
        snapshot: Any,
        validation: Any = None,  # only orders train after validate
        team: str = "default",
        resource_overrides: Any = None,
        keep_failed_pods: bool | None = None,
        teams_path: Path = DEFAULT_TEAMS_PATH,
        log_tail_lines: int = LOG_TAIL_LINES,
        task_id: str = "train",
        **kwargs: Any,
    ) -> None:
        # Pools are fixed when the DAG is parsed, so the team is too; plans for another team are refused.
        self.team_entry = load_teams(teams_path).team(team)
        keep = self.team_entry.keep_failed_pods if keep_failed_pods is None else keep_failed_pods
        kwargs.setdefault("pool", self.team_entry.pool)
        kwargs.setdefault("kubernetes_conn_id", self.team_entry.kubernetes_conn_id)
        kwargs.setdefault("startup_timeout_seconds", TRAINER_STARTUP_TIMEOUT_S)
        kwargs.setdefault("on_finish_action", "delete_succeeded_pod" if keep else "delete_pod")
        super().__init__(
            task_id=task_id,
            do_xcom_push=True,
            termination_message_policy="FallbackToLogsOnError",
            log_pod_spec_on_failure=False,  # our failure message says what matters, without the whole spec
            xcom_sidecar_container_security_context=SIDECAR_SECURITY_CONTEXT,
            **kwargs,
        )
        self.plan = plan
        self.snapshot = snapshot
        self.validation = validation
        self.resource_overrides = resource_overrides
        self.log_tail_lines = log_tail_lines

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        self.full_pod_spec = self.trainer_pod()
        return super().build_pod_request_obj(context, dry_run=dry_run)

    def trainer_pod(self) -> k8s.V1Pod:
        from operators.context import load_catalog
        from steps.lifecycle.train import training_job

        run = run_for_team(self.plan, self.team_entry)
        settings = settings_pods_can_use()
        overrides = ResourceOverrides.model_validate(xcom_record(self.resource_overrides)) if self.resource_overrides else None
        placement = placement_for(load_catalog(settings).algorithm(run.algorithm), self.team_entry, overrides)
        job = training_job(run, self._snapshot_ref().dataset_hash)
        return render_trainer_pod(job, run.image, settings.store, placement)

    def _snapshot_ref(self):
        from steps.data.snapshot import SnapshotRef

        return SnapshotRef.model_validate(xcom_record(self.snapshot))

    def _retries(self) -> int:
        from steps.lifecycle.plan import RunPlan

        return RunPlan.model_validate(xcom_record(self.plan)).retries

    def execute(self, context: Any) -> dict:
        from operators.training_reuse import skip_if_already_trained

        with (
            retrying_only_what_can_succeed(self._retries(), context),
            recording_failure(self.task_id, context, plan_run_key(self.plan)),
            self._refusals_explained(),
        ):
            skip_if_already_trained(xcom_record(self.plan), xcom_record(self.snapshot), context)  # before any pod exists
            return self._trainer_result(super().execute(context))

    @contextmanager
    def _refusals_explained(self) -> Iterator[None]:
        """The API server's refusal to create the pod, in one line instead of an HTTP dump."""
        try:
            yield
        except ApiException as error:
            refusal = quota_refusal(error, self.team_entry.namespace)
            if refusal is None:
                raise
            raise TrainerPodFailed(refusal.reason, refusal) from None

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> Any:
        with (
            retrying_only_what_can_succeed(self._retries(), context),
            recording_failure(self.task_id, context, plan_run_key(self.plan)),
        ):
            return self._trainer_result(super().trigger_reentry(context, event))

    def _trainer_result(self, xcom: Any) -> dict:
        from steps.training.contract import XCOM_RETURN_PATH

        if not xcom:
            raise AirflowException(f"trainer pod succeeded but wrote no result to {XCOM_RETURN_PATH}")
        return finished_training(self.plan, self.snapshot, xcom)

    def cleanup(self, pod: k8s.V1Pod, remote_pod: k8s.V1Pod, xcom_result: dict | None = None, context: Any = None) -> None:
        if not remote_pod and self.pod is not None:
            # Created, but the provider's label lookup right after creation can come back empty:
            # judge the pod by name rather than let a later error (e.g. the XCom sidecar's) speak.
            remote_pod = self.pod
        if self._killed or not remote_pod:
            return super().cleanup(pod, remote_pod, xcom_result, context)
        # The pod read at start may be stale (killed at its deadline since): judge the latest state,
        # and read the log tail before the provider deletes the pod.
        deleted = False
        try:
            remote_pod = self.pod_manager.read_pod(remote_pod)
        except ApiException as error:
            deleted = error.status == 404
        except Exception:  # unreachable: the last known state is all there is
            pass
        failure = None
        # The pod's phase is the verdict: at its deadline the kubelet stops the trainer, which may
        # still exit 0 ("Completed", seen on the tier), while the pod is Failed (DeadlineExceeded).
        pod_failed = remote_pod.status is not None and remote_pod.status.phase == "Failed"
        if deleted or pod_failed or not container_is_succeeded(remote_pod, self.base_container_name):
            failure = self.describe_failure(remote_pod, deleted=deleted)
        try:
            super().cleanup(pod, remote_pod, xcom_result, context)
        except AirflowException:
            if failure is None:
                raise
            raise failure from None
        if failure is not None:  # a deleted pod can look succeeded to the provider's stale copy
            raise failure

    def describe_failure(self, pod: k8s.V1Pod, *, deleted: bool = False) -> TrainerPodFailed:
        """One line on why (from the pod's latest status and the trainer's exit code and last log
        lines; its failure kind decides whether a retry may follow), then those log lines."""
        from steps.training.trainer_env import redact, trainer_secret_env

        container = get_container_status(pod, TRAINER_CONTAINER)
        terminated = container.state.terminated if container and container.state else None
        # The kubelet keeps the log tail as the termination message (FallbackToLogsOnError): it
        # outlives log rotation and the pod's deletion, so it comes first.
        kept = terminated.message if terminated else ""
        tail = kept or ("" if deleted else self._log_tail(pod)) or ""
        source = "the kubelet's termination message" if kept else "the pod's log"
        failure = deleted_pod_failure(pod) if deleted else pod_failure(pod, TRAINER_CONTAINER, tail.splitlines())
        text = f"{failure.reason}\nlast log lines ({source}):\n{tail.rstrip() or '(no log output)'}"
        try:
            from operators.context import load_settings

            secrets = trainer_secret_env(load_settings().store)
        except Exception:  # without the secrets we cannot redact: withhold the log rather than risk it
            # The first line may quote the trainer's log too: keep only its words before the quote.
            text = f"{failure.reason.split(':')[0]}\n(log tail withheld: the store settings needed to redact it could not be loaded)"
            secrets = {}
        return TrainerPodFailed(redact(text, secrets), failure)

    def _log_tail(self, pod: k8s.V1Pod) -> str:
        try:
            return self.client.read_namespaced_pod_log(
                name=pod.metadata.name,
                namespace=pod.metadata.namespace,
                container=self.base_container_name,
                tail_lines=self.log_tail_lines,
            )
        except Exception as exc:  # the termination message still carries the tail
            self.log.warning("could not read the log tail of pod %s: %s", pod.metadata.name, exc)
            return ""
