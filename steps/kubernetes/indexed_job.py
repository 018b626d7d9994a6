"""Render a multi-node training run as a Kubernetes Indexed Job plus the headless Service its pods
meet through. Plain kubernetes-client models, no API calls (the Job operator submits them).

Pod i of the Job (JOB_COMPLETION_INDEX=i) is node i: torchrun --node-rank $(JOB_COMPLETION_INDEX).
The Job controller names pod i's host `<job>-<i>`; with `subdomain: <service>`, the headless
Service gives it the DNS name `<job>-<i>.<service>`, so node 0's static rendezvous is reachable at
`<job>-0.<service>:29500` as soon as its pod has an address. Every pod is the hardened trainer pod of
pod_spec.py: digest-pinned image, secretKeyRef credentials, non-root, read-only root, a deadline.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kubernetes.client import models as k8s

from steps.images.trainer_image import TrainerImage
from steps.kubernetes.pod_spec import PodPlacement, label_value, render_trainer_pod
from steps.store import StoreSettings
from steps.training.contract import TrainingJob
from steps.training.launch import RENDEZVOUS_PORT, Rendezvous

#: Set by the Job controller in every pod of an Indexed Job; declared here too, from the same
#: annotation, so the kubelet can expand $(JOB_COMPLETION_INDEX) in the command.
ENV_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
LABEL_TRAINING_JOB = "trainyard.io/training-job"
RENDEZVOUS_PORT_NAME = "rendezvous"
# Pod hostnames are `<job>-<index>` and must stay one DNS label (63 characters).
MAX_JOB_NAME_CHARS = 63 - len(f"-{16 - 1}")


@dataclass(frozen=True)
class IndexedTrainingJob:
    name: str  # of the Job and of its Service
    job: k8s.V1Job
    service: k8s.V1Service

    @property
    def rendezvous_address(self) -> str:
        return f"{self.name}-0.{self.name}"


def indexed_job_name(job: TrainingJob, unique: str) -> str:
    """A DNS-1035 label (the Service's name rules) naming the algorithm and run, unique per try:
    at most 6 + 24 + 1 + 10 + 1 + len(unique) characters."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"train-{job.algorithm[:24]}-{job.run_id[-10:]}".lower()).strip("-")
    return f"{base}-{unique}"


def render_indexed_job(
    job: TrainingJob,
    image: TrainerImage,
    store: StoreSettings,
    placement: PodPlacement,
    *,
    name: str,
    rendezvous_timeout_s: int,
) -> IndexedTrainingJob:
    if job.nodes < 2:
        raise ValueError(f"a {job.shape} run is one pod (render_trainer_pod); an Indexed Job is for nodes > 1")
    if len(name) > MAX_JOB_NAME_CHARS or not re.fullmatch(r"[a-z]([a-z0-9-]*[a-z0-9])?", name):
        raise ValueError(f"{name!r} cannot name a Job whose pods are addressed as <name>-<index>.<name>")
    rendezvous = Rendezvous(
        master_addr=f"{name}-0.{name}",
        master_port=RENDEZVOUS_PORT,
        node_rank=f"$({ENV_COMPLETION_INDEX})",
        timeout_s=rendezvous_timeout_s,
    )
    pod = render_trainer_pod(job, image, store, placement, rendezvous)
    trainer = pod.spec.containers[0]
    trainer.env.append(
        k8s.V1EnvVar(
            name=ENV_COMPLETION_INDEX,
            value_from=k8s.V1EnvVarSource(
                field_ref=k8s.V1ObjectFieldSelector(field_path=f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']")
            ),
        )
    )
    trainer.ports = [k8s.V1ContainerPort(name=RENDEZVOUS_PORT_NAME, container_port=RENDEZVOUS_PORT)]
    pod.spec.subdomain = name
    labels = {**pod.metadata.labels, LABEL_TRAINING_JOB: label_value(name)}
    template = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=labels, annotations=pod.metadata.annotations), spec=pod.spec
    )
    indexed = k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=name, namespace=placement.namespace, labels=labels, annotations=pod.metadata.annotations
        ),
        spec=k8s.V1JobSpec(
            completion_mode="Indexed",
            completions=job.nodes,
            parallelism=job.nodes,  # every node at once: the rendezvous waits for all of them
            backoff_limit=0,  # one failed node fails the Job, and the controller stops the other pods
            active_deadline_seconds=placement.active_deadline_s,
            template=template,
        ),
    )
    service = k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=k8s.V1ObjectMeta(name=name, namespace=placement.namespace, labels=labels),
        spec=k8s.V1ServiceSpec(
            cluster_ip="None",  # headless: DNS names for the pods, no virtual IP
            selector={LABEL_TRAINING_JOB: label_value(name)},
            # Node 0 must be resolvable while it waits for the others, before anything calls it ready.
            publish_not_ready_addresses=True,
            ports=[k8s.V1ServicePort(name=RENDEZVOUS_PORT_NAME, port=RENDEZVOUS_PORT, target_port=RENDEZVOUS_PORT)],
        ),
    )
    return IndexedTrainingJob(name=name, job=indexed, service=service)
