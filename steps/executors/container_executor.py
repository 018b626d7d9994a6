"""The container executor: a training step's rendered pod, run on this machine with podman
(or docker). The pod is the one the Kubernetes executor would submit, so the container gets
the same image digest, env, read-only root, scratch volume and user (docs/trainer-contract.md).
A distributed run is torchrun inside the container; a multi-node run is one container per node.
"""
from __future__ import annotations

import json
import logging
import os
import secrets as random_tokens
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from kubernetes.client import models as k8s

from steps.catalog.catalog import Resources
from steps.executors.base import TrainerFailed
from steps.executors.node_group import reserved_port, run_node_group
from steps.executors.trainer_process import run_trainer_process, trainer_result
from steps.images.trainer_image import TrainerImage
from steps.kubernetes.pod_spec import GPU_RESOURCE, TRAINER_CONTAINER, PodPlacement, render_trainer_pod
from steps.store import StoreSettings
from steps.training.contract import TrainerResult, TrainingJob
from steps.training.launch import DEFAULT_RENDEZVOUS_TIMEOUT_S, Rendezvous
from steps.training.trainer_env import trainer_secret_env

log = logging.getLogger(__name__)

RUNTIMES = ("podman", "docker")
PULL_TIMEOUT_S = 1800
LOCAL_PLACEMENT_SECRET = "trainyard-store"  # only a name: values come from StoreSettings on this host
_LOOPBACK_REGISTRIES = ("127.0.0.1", "localhost", "[::1]")


class ContainerRuntimeError(RuntimeError):
    """podman/docker is missing or cannot fetch the image; not the trainer's failure."""


def podman_args(
    pod: k8s.V1Pod,
    secrets: Mapping[str, str],
    *,
    empty_dirs: Mapping[str, str] | None = None,
    runtime: str = "podman",
) -> list[str]:
    """The `run` arguments (after the runtime binary) that run the pod's trainer container.

    Secret values never appear in the arguments: each secretKeyRef becomes a bare `-e NAME`,
    which podman and docker fill in from their own environment (the caller puts `secrets`
    there), so they stay out of `ps`, logs and error messages. `empty_dirs` maps an emptyDir
    volume's name to a host directory to bind; an unmapped emptyDir becomes a tmpfs.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"container runtime {runtime!r} is not supported; use {' or '.join(RUNTIMES)}")
    container = _trainer_container(pod)
    context = container.security_context or k8s.V1SecurityContext()
    pod_context = pod.spec.security_context or k8s.V1PodSecurityContext()
    uid = context.run_as_user if context.run_as_user is not None else pod_context.run_as_user
    gid = context.run_as_group if context.run_as_group is not None else pod_context.run_as_group
    if (context.run_as_non_root or pod_context.run_as_non_root) and not uid:
        raise ValueError("the pod demands a non-root trainer but sets no non-zero runAsUser")

    args = ["run", "--rm", "--network", "host", "--pull", "never"]
    if runtime == "podman":
        args[1:1] = ["--runtime", "runc"]  # crun fails on some cgroup layouts; runc works everywhere
    if uid is not None:
        args += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
    if context.read_only_root_filesystem:
        args += ["--read-only"]
        if runtime == "podman":
            # podman would add writable /tmp, /var/tmp and /run; a Kubernetes pod has none of them.
            args += ["--read-only-tmpfs=false"]
    for capability in (context.capabilities.drop or []) if context.capabilities else []:
        args += ["--cap-drop", capability]
    if context.allow_privilege_escalation is False:
        args += ["--security-opt", "no-new-privileges"]
    args += _resource_args(container.resources, runtime)
    args += _volume_args(pod, container, dict(empty_dirs or {}))
    for name, value in sorted((pod.metadata.labels or {}).items()):
        args += ["--label", f"{name}={value}"]
    for env in container.env or []:
        args += ["-e", _env_arg(env, secrets)]
    if container.command:  # as in Kubernetes: `command` replaces the image's ENTRYPOINT, `args` its CMD
        args += ["--entrypoint", json.dumps(list(container.command))]
    args.append(container.image)
    args += list(container.args or [])
    return args


def _trainer_container(pod: k8s.V1Pod) -> k8s.V1Container:
    for container in pod.spec.containers:
        if container.name == TRAINER_CONTAINER:
            return container
    raise ValueError(f"pod {pod.metadata.name!r} has no {TRAINER_CONTAINER!r} container")


def _resource_args(resources: k8s.V1ResourceRequirements | None, runtime: str) -> list[str]:
    limits = (resources.limits if resources else None) or {}
    args: list[str] = []
    if "cpu" in limits:
        args += ["--cpus", _cpus(limits["cpu"])]
    if "memory" in limits:
        args += ["--memory", _memory(limits["memory"])]
    if int(limits.get(GPU_RESOURCE, 0) or 0) > 0:
        count = limits[GPU_RESOURCE]
        # podman reaches GPUs through CDI (nvidia-ctk cdi generate); docker through its --gpus flag.
        args += ["--device", "nvidia.com/gpu=all"] if runtime == "podman" else ["--gpus", str(count)]
    return args


def _cpus(quantity: str) -> str:
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else quantity


_MEMORY_SUFFIXES = {"Ki": "k", "Mi": "m", "Gi": "g", "Ti": "t"}


def _memory(quantity: str) -> str:
    for suffix, unit in _MEMORY_SUFFIXES.items():
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    return quantity  # plain bytes


def _volume_args(pod: k8s.V1Pod, container: k8s.V1Container, empty_dirs: dict[str, str]) -> list[str]:
    volumes = {v.name: v for v in pod.spec.volumes or []}
    args: list[str] = []
    for mount in container.volume_mounts or []:
        volume = volumes.get(mount.name)
        if volume is None:
            raise ValueError(f"volume mount {mount.name!r} names no volume of pod {pod.metadata.name!r}")
        suffix = ":ro" if mount.read_only else ""
        if volume.empty_dir is not None:
            if mount.name in empty_dirs:
                args += ["-v", f"{empty_dirs[mount.name]}:{mount.mount_path}{suffix}"]
            else:
                args += ["--tmpfs", f"{mount.mount_path}:rw,mode=1777"]
        elif volume.host_path is not None:
            args += ["-v", f"{volume.host_path.path}:{mount.mount_path}{suffix}"]
        else:
            raise ValueError(f"volume {mount.name!r} is neither an emptyDir nor a hostPath; a local container cannot mount it")
    return args


def _env_arg(env: k8s.V1EnvVar, secrets: Mapping[str, str]) -> str:
    if env.value_from is None:
        return f"{env.name}={env.value or ''}"
    ref = env.value_from.secret_key_ref
    if ref is None:
        raise ValueError(f"env {env.name} comes from something other than a Secret; a local container cannot resolve it")
    if ref.key not in secrets:
        raise ValueError(f"env {env.name} needs key {ref.key!r} of Secret {ref.name!r}, which the store settings do not provide")
    return env.name  # value taken from the runtime's environment, never from the command line


def is_loopback_registry(reference: str) -> bool:
    host = reference.split("/", 1)[0]
    return host.rsplit(":", 1)[0] in _LOOPBACK_REGISTRIES


class ContainerExecutor:
    kind = "container"

    def __init__(
        self,
        runtime: str = "podman",
        *,
        resources: Resources | None = None,
        containers_conf: str | None = None,
        rendezvous_timeout_s: int = DEFAULT_RENDEZVOUS_TIMEOUT_S,
    ):
        if runtime not in RUNTIMES:
            raise ValueError(f"container runtime {runtime!r} is not supported; use {' or '.join(RUNTIMES)}")
        self.runtime = runtime
        self.resources = resources or Resources()
        self.rendezvous_timeout_s = rendezvous_timeout_s
        # This sandbox (and CI) need images/containers.conf; a user's own podman config wins if set.
        default_conf = Path(__file__).resolve().parents[2] / "images" / "containers.conf"
        self.containers_conf = containers_conf or os.environ.get("CONTAINERS_CONF") or (
            str(default_conf) if runtime == "podman" and default_conf.is_file() else None
        )

    def _runtime_env(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        env = {**os.environ, **extra}
        if self.containers_conf:
            env["CONTAINERS_CONF"] = self.containers_conf
        return env

    def _binary(self) -> str:
        binary = shutil.which(self.runtime)
        if binary is None:
            raise ContainerRuntimeError(f"{self.runtime} is not installed; the container executor needs it")
        return binary

    def ensure_image(self, reference: str) -> None:
        """Pull a digest-pinned image unless it is already local (a digest never changes)."""
        binary = self._binary()
        probe = [binary, "image", "inspect", reference]
        if subprocess.run(probe, env=self._runtime_env(), capture_output=True).returncode == 0:
            return
        pull = [binary, "pull", "--quiet"]
        if self.runtime == "podman" and is_loopback_registry(reference):
            pull.append("--tls-verify=false")  # a loopback test/dev registry speaks plain http
        pull.append(reference)
        done = subprocess.run(pull, env=self._runtime_env(), capture_output=True, text=True, timeout=PULL_TIMEOUT_S)
        if done.returncode != 0:
            raise ContainerRuntimeError(f"{self.runtime} pull {reference} failed:\n{done.stderr.strip()[-2000:]}")

    def _placement(self, deadline_s: int) -> PodPlacement:
        return PodPlacement(
            team="local",
            namespace="local",
            resources=self.resources,
            active_deadline_s=deadline_s,
            secret_name=LOCAL_PLACEMENT_SECRET,
        )

    def _prepare(self, pod: k8s.V1Pod, store: StoreSettings) -> str:
        """Checks and the pull every node shares; a unique container name for the run."""
        if store.backend == "local":
            _require_writable_by_trainer(Path(store.root), pod)
        self.ensure_image(pod.spec.containers[0].image)
        return f"trainyard-{pod.metadata.name}-{random_tokens.token_hex(4)}"

    def run(self, job: TrainingJob, image: TrainerImage, store: StoreSettings, *, deadline_s: int) -> TrainerResult:
        if job.nodes > 1:
            return self._run_nodes(job, image, store, deadline_s=deadline_s)
        pod = render_trainer_pod(job, image, store, self._placement(deadline_s))  # 1×P: torchrun --standalone inside
        name = self._prepare(pod, store)
        secrets = trainer_secret_env(store)
        binary = self._binary()
        reference = pod.spec.containers[0].image
        with tempfile.TemporaryDirectory(prefix="trainyard-scratch-") as scratch:
            _give_to_trainer(Path(scratch), pod)
            args = podman_args(pod, secrets, empty_dirs={"scratch": scratch}, runtime=self.runtime)
            command = [binary, *args[:1], "--name", name, *args[1:]]
            log.info("running trainer %s (%s) in %s (%s)", job.algorithm, job.shape, reference, self.runtime)
            outcome = run_trainer_process(
                command,
                env=self._runtime_env(secrets),
                deadline_s=deadline_s,
                secrets=secrets,
                # Killing the client would leave the container running: remove the container itself.
                on_deadline=lambda _proc: self._remove(binary, name),
            )
        where = f" (deadline {deadline_s}s)" if outcome.timed_out else f" in container {reference}"
        return trainer_result(job, outcome, store, where)

    def _run_nodes(self, job: TrainingJob, image: TrainerImage, store: StoreSettings, *, deadline_s: int) -> TrainerResult:
        """One container per node, all on this host's network (where the store is reachable too);
        node 0 hosts torchrun's static rendezvous on a loopback port held for the run."""
        secrets = trainer_secret_env(store)
        binary = self._binary()
        with reserved_port() as port, ExitStack() as scratches:
            pods = [
                render_trainer_pod(
                    job, image, store, self._placement(deadline_s),
                    Rendezvous(master_addr="127.0.0.1", master_port=port, node_rank=str(node), timeout_s=self.rendezvous_timeout_s),
                )
                for node in range(job.nodes)
            ]
            name = self._prepare(pods[0], store)
            names = [f"{name}-node{node}" for node in range(job.nodes)]
            commands = []
            for node, pod in enumerate(pods):
                scratch = scratches.enter_context(tempfile.TemporaryDirectory(prefix=f"trainyard-scratch-node{node}-"))
                _give_to_trainer(Path(scratch), pod)
                args = podman_args(pod, secrets, empty_dirs={"scratch": scratch}, runtime=self.runtime)
                commands.append([binary, *args[:1], "--name", names[node], *args[1:]])
            log.info("running trainer %s (%s) in %d containers, rendezvous 127.0.0.1:%d", job.algorithm, job.shape, job.nodes, port)
            outcome = run_node_group(
                commands,
                env=self._runtime_env(secrets),
                deadline_s=deadline_s,
                secrets=secrets,
                stop_all=lambda: self._remove(binary, *names),
            )
        reference = pods[0].spec.containers[0].image
        where = f" (deadline {deadline_s}s)" if outcome.timed_out else f" in {job.nodes} containers of {reference}"
        return trainer_result(job, outcome, store, where)

    def _remove(self, binary: str, *names: str) -> None:
        # At once: podman would otherwise give a stopped trainer 10 s of grace, and Airflow escalates a
        # killed task to SIGKILL after 5 s (docker's rm --force already kills at once).
        grace = ["--time", "0"] if self.runtime == "podman" else []
        subprocess.run([binary, "rm", "--force", *grace, *names], env=self._runtime_env(), capture_output=True)


def _trainer_uid(pod: k8s.V1Pod) -> int | None:
    context = _trainer_container(pod).security_context
    return context.run_as_user if context else None


def _give_to_trainer(scratch: Path, pod: k8s.V1Pod) -> None:
    """Scratch is an emptyDir in Kubernetes (writable by the pod's fsGroup); here, the trainer's uid owns it."""
    uid = _trainer_uid(pod)
    if uid is not None and os.geteuid() == 0:
        os.chown(scratch, uid, uid)
    else:
        scratch.chmod(0o777)


def _require_writable_by_trainer(root: Path, pod: k8s.V1Pod) -> None:
    """A local store is bind-mounted; the trainer (uid 10001) must be able to write into it."""
    uid = _trainer_uid(pod)
    root.mkdir(parents=True, exist_ok=True)
    for directory in (root, root / ".objects"):
        if not directory.exists():
            continue
        info = directory.stat()
        if uid is None or info.st_mode & 0o002 or (info.st_uid == uid and info.st_mode & 0o200):
            continue
        raise TrainerFailed(
            f"the local store {root} is not writable by the trainer's uid {uid} ({directory} is owned by uid "
            f"{info.st_uid}, mode {oct(info.st_mode & 0o777)}); use the MinIO store (TRAINYARD_STORE=minio) "
            f"with the container executor, or give uid {uid} write access to the store directory"
        )
