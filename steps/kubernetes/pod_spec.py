"""Render one trainer run as a Kubernetes pod: the trainer contract as env, credentials by
Secret reference, the image by digest, locked-down security, placement and a deadline.

The KubernetesPodOperator submits this pod; the container executor maps the same V1Pod to
`podman run`, so everything a trainer needs to run is in it (docs/kubernetes.md).
"""
from __future__ import annotations

import re

from kubernetes.client import models as k8s
from pydantic import BaseModel, ConfigDict, Field, field_validator

from steps.catalog.catalog import AlgorithmEntry, Resources
from steps.catalog.teams import NodeRequirement, TeamEntry, Toleration, quantity
from steps.hashing import sha256_bytes
from steps.images.trainer_image import IMAGE_PYTHON, TrainerImage
from steps.store import StoreSettings
from steps.training.contract import DEFAULT_SCRATCH_DIR, ENV_SCRATCH_DIR, TrainingJob
from steps.training.launch import Rendezvous, torchrun_command
from steps.training.trainer_env import trainer_public_env, trainer_secret_env

TRAINER_CONTAINER = "base"  # the name KubernetesPodOperator follows logs and exit status of
TRAINER_UID = 10001
# How long a trainer pod may take to be scheduled and to start. The provider's default (120 s) is
# shorter than a node's first pull of a multi-GB trainer image on a busy node (2.7 GB took 60-180 s
# on the test tier); a missing image still fails at once (ErrImagePull), and the deadline still holds.
TRAINER_STARTUP_TIMEOUT_S = 600
SCRATCH_VOLUME = "scratch"
STORE_VOLUME = "store"
GPU_RESOURCE = "nvidia.com/gpu"
# The NVIDIA GPU operator labels GPU nodes so; GPU node pools are usually tainted nvidia.com/gpu.
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATION = Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")
SHORT_HASH_CHARS = 12

LABEL_RUN_ID = "trainyard.io/run-id"
LABEL_DATASET_HASH = "trainyard.io/dataset-hash"
LABEL_IMAGE_DIGEST = "trainyard.io/image-digest"
LABEL_ALGORITHM = "trainyard.io/algorithm"
LABEL_TEAM = "trainyard.io/team"

_PINNED_RE = re.compile(r"^(?P<repository>[^@\s]+)@sha256:[0-9a-f]{64}$")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")


class UnpinnedImage(ValueError):
    """A trainer image that is not referenced by digest; Kubernetes never runs one."""


class PlacementError(ValueError):
    """Per-run resource overrides outside the team's bounds, or inconsistent with each other."""


class ResourceOverrides(BaseModel):
    """What one run may change about its algorithm's resources (each bounded by its team)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    gpu_count: int | None = Field(default=None, ge=0)

    @field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit")
    @classmethod
    def _is_quantity(cls, value: str | None) -> str | None:
        if value is not None and quantity(value) <= 0:
            raise ValueError(f"{value!r} must be more than zero")
        return value


class PodPlacement(BaseModel):
    """Where and with what a trainer pod runs: resolved from algorithm, team and overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    team: str
    namespace: str
    resources: Resources
    node_selector: dict[str, str] = {}
    tolerations: tuple[Toleration, ...] = ()
    node_affinity: tuple[NodeRequirement, ...] = ()
    active_deadline_s: int = Field(ge=1)
    secret_name: str  # Secret with TRAINYARD_MINIO_ACCESS_KEY / TRAINYARD_MINIO_SECRET_KEY
    keep_failed_pods: bool = False


def placement_for(algorithm: AlgorithmEntry, team: TeamEntry, overrides: ResourceOverrides | None = None) -> PodPlacement:
    resources = _apply_overrides(algorithm.resources, team, overrides)
    gpu = resources.gpu_count > 0
    return PodPlacement(
        team=team.name,
        namespace=team.namespace,
        resources=resources,
        node_selector={**GPU_NODE_SELECTOR, **team.gpu_pool.node_selector} if gpu else {},
        tolerations=(GPU_TOLERATION, *team.gpu_pool.tolerations) if gpu else (),
        node_affinity=team.gpu_pool.node_affinity if gpu else (),
        active_deadline_s=algorithm.deadline_s,
        secret_name=team.store_secret,
        keep_failed_pods=team.keep_failed_pods,
    )


def _apply_overrides(base: Resources, team: TeamEntry, overrides: ResourceOverrides | None) -> Resources:
    if overrides is None:
        return base
    changes = overrides.model_dump(exclude_none=True)
    bounds = team.max_overrides
    problems = []
    for field, bound_name, bound in (
        ("cpu_request", "cpu", bounds.cpu),
        ("cpu_limit", "cpu", bounds.cpu),
        ("memory_request", "memory", bounds.memory),
        ("memory_limit", "memory", bounds.memory),
    ):
        if field in changes and quantity(changes[field]) > quantity(bound):
            problems.append(f"{field}={changes[field]} exceeds team {team.name!r} bound max_overrides.{bound_name}={bound}")
    if changes.get("gpu_count", 0) > bounds.gpu:
        problems.append(f"gpu_count={changes['gpu_count']} exceeds team {team.name!r} bound max_overrides.gpu={bounds.gpu}")
    resources = base.model_copy(update=changes)
    # The API server would refuse these anyway; say so before a pod is ever submitted.
    for kind in ("cpu", "memory"):
        request, limit = getattr(resources, f"{kind}_request"), getattr(resources, f"{kind}_limit")
        if quantity(request) > quantity(limit):
            problems.append(f"{kind}_request={request} is more than {kind}_limit={limit}")
    if problems:
        raise PlacementError("resource overrides refused: " + "; ".join(problems))
    return resources


def pinned_image(image: TrainerImage) -> str:
    """`repo@sha256:<64 hex>`, or a clear refusal: a tag can move between two runs."""
    if not image.image_digest:
        raise UnpinnedImage(
            f"trainer image {image.image_reference!r} for {image.algorithm!r} has no digest; Kubernetes "
            "runs trainers by digest only (repo@sha256:...), resolved once when the run is planned"
        )
    reference = image.pinned_reference
    match = _PINNED_RE.match(reference)
    if not match or ":" in match["repository"].rsplit("/", 1)[-1]:
        raise UnpinnedImage(f"trainer image {reference!r} for {image.algorithm!r} is not of the form repo@sha256:<64 hex>")
    return reference


def label_value(text: str) -> str:
    """A valid label value for `text`: itself when valid, else a readable prefix + a short hash."""
    if _LABEL_VALUE_RE.match(text):
        return text
    prefix = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("._-")[:52].rstrip("._-")
    suffix = sha256_bytes(text.encode("utf-8"))[:10]
    return f"{prefix}-{suffix}" if prefix else suffix


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:SHORT_HASH_CHARS]


def _dns_label(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def trainer_command(job: TrainingJob, image: TrainerImage, rendezvous: Rendezvous | None = None) -> list[str] | None:
    """None runs the image's entrypoint as one process; a distributed job starts it with torchrun."""
    if not job.shape.distributed:
        return None
    return torchrun_command(IMAGE_PYTHON, image.script_in_image, job.shape, rendezvous)


def render_trainer_pod(
    job: TrainingJob,
    image: TrainerImage,
    store: StoreSettings,
    placement: PodPlacement,
    rendezvous: Rendezvous | None = None,
) -> k8s.V1Pod:
    """`rendezvous`: where this node of a multi-node run meets the others (steps/kubernetes/indexed_job.py)."""
    reference = pinned_image(image)
    env = [k8s.V1EnvVar(name=name, value=value) for name, value in sorted(trainer_public_env(job, store).items())]
    # The root filesystem is read-only: everything a trainer (or torch, or tempfile) writes goes to scratch.
    env += [
        k8s.V1EnvVar(name=ENV_SCRATCH_DIR, value=DEFAULT_SCRATCH_DIR),
        k8s.V1EnvVar(name="HOME", value=DEFAULT_SCRATCH_DIR),
        k8s.V1EnvVar(name="TMPDIR", value=DEFAULT_SCRATCH_DIR),
    ]
    # Only the names of credentials enter the pod spec; the kubelet reads the values from the Secret.
    env += [
        k8s.V1EnvVar(
            name=name,
            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=placement.secret_name, key=name)),
        )
        for name in sorted(trainer_secret_env(store))
    ]
    volumes = [k8s.V1Volume(name=SCRATCH_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource())]
    mounts = [k8s.V1VolumeMount(name=SCRATCH_VOLUME, mount_path=DEFAULT_SCRATCH_DIR)]
    if store.backend == "local":
        # Only the container executor can share a host directory; the Kubernetes operator refuses this.
        volumes.append(k8s.V1Volume(name=STORE_VOLUME, host_path=k8s.V1HostPathVolumeSource(path=store.root, type="Directory")))
        mounts.append(k8s.V1VolumeMount(name=STORE_VOLUME, mount_path=store.root))

    resources = placement.resources
    limits = {"cpu": resources.cpu_limit, "memory": resources.memory_limit}
    if resources.gpu_count:
        limits[GPU_RESOURCE] = str(resources.gpu_count)
    container = k8s.V1Container(
        name=TRAINER_CONTAINER,
        image=reference,
        image_pull_policy="IfNotPresent",  # a digest never changes, so a cached copy is the same image
        command=trainer_command(job, image, rendezvous),
        env=env,
        resources=k8s.V1ResourceRequirements(
            requests={"cpu": resources.cpu_request, "memory": resources.memory_request}, limits=limits
        ),
        volume_mounts=mounts,
        security_context=k8s.V1SecurityContext(
            run_as_non_root=True,
            run_as_user=TRAINER_UID,
            run_as_group=TRAINER_UID,
            read_only_root_filesystem=True,
            allow_privilege_escalation=False,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        # On failure the kubelet keeps the log tail as the termination message, even after logs rotate.
        termination_message_policy="FallbackToLogsOnError",
    )
    affinity = None
    if placement.node_affinity:
        term = k8s.V1NodeSelectorTerm(
            match_expressions=[
                k8s.V1NodeSelectorRequirement(key=r.key, operator=r.operator, values=list(r.values) or None)
                for r in placement.node_affinity
            ]
        )
        affinity = k8s.V1Affinity(
            node_affinity=k8s.V1NodeAffinity(
                required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(node_selector_terms=[term])
            )
        )
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=k8s.V1ObjectMeta(
            name=_dns_label(f"train-{job.algorithm[:30]}-{job.run_id[-10:]}"),  # the provider appends a random suffix
            namespace=placement.namespace,
            labels={
                LABEL_RUN_ID: label_value(job.run_id),
                LABEL_DATASET_HASH: _short(job.dataset_hash),
                LABEL_IMAGE_DIGEST: _short(reference.rsplit("@", 1)[1]),
                LABEL_ALGORITHM: label_value(job.algorithm),
                LABEL_TEAM: label_value(placement.team),
            },
            # Labels are short for selectors; the annotations keep the full values for audit.
            annotations={"trainyard.io/image": reference, "trainyard.io/dataset-hash": job.dataset_hash},
        ),
        spec=k8s.V1PodSpec(
            containers=[container],
            volumes=volumes,
            restart_policy="Never",
            active_deadline_seconds=placement.active_deadline_s,
            node_selector=dict(placement.node_selector) or None,
            tolerations=[
                k8s.V1Toleration(key=t.key, operator=t.operator, value=t.value, effect=t.effect) for t in placement.tolerations
            ]
            or None,
            affinity=affinity,
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=TRAINER_UID,
                run_as_group=TRAINER_UID,
                fs_group=TRAINER_UID,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            ),
            automount_service_account_token=False,  # a trainer never talks to the Kubernetes API
            enable_service_links=False,
        ),
    )
