"""A 2-node run as the Indexed Job and headless Service steps/kubernetes/indexed_job.py renders,
on the real single-node cluster: the pods find node 0 through CoreDNS (`<job>-0.<service>`), take
their node rank from JOB_COMPLETION_INDEX, read the store credentials by secretKeyRef, pass the
team namespace's restricted Pod Security, and train the digits CNN with torchrun over gloo to the
same weights the subprocess executor gets from the same job at 1 node x 2 processes.
"""
from __future__ import annotations

import secrets

import pytest
from kubernetes import client

from steps.catalog.teams import load_teams
from steps.images.trainer_image import TrainerImage
from steps.kubernetes.indexed_job import indexed_job_name, render_indexed_job
from steps.kubernetes.pod_spec import placement_for
from steps.store import open_store
from steps.store.run_layout import RunLayout
from steps.training.contract import TrainerResult
from tests.kubernetes.pods import describe_pod, pod_log, wait_for_job_condition

pytestmark = [pytest.mark.kubernetes, pytest.mark.minio, pytest.mark.registry, pytest.mark.slow]

TEAM = "default"
# Both nodes' first image pull, start-up and 2 epochs of the digits CNN on a loaded 2-core machine.
JOB_FINISH_TIMEOUT_S = 900


def test_a_two_node_indexed_job_meets_through_its_headless_service_and_trains_what_one_node_of_two_processes_does(
    kubernetes_api, core_v1, kubernetes_pipeline
):
    from steps.executors.subprocess_executor import SubprocessExecutor
    from steps.lifecycle.train import training_job
    from tests.pipeline_fixtures import catalog, make_plan, snapshot_of

    batch = client.BatchV1Api(kubernetes_api)
    tier_store = kubernetes_pipeline.store  # MinIO on the bridge; the store Secret is in every team namespace
    repository, digest = kubernetes_pipeline.images["digits-cnn"].split("@")
    image = TrainerImage(algorithm="digits-cnn", image_reference=repository, image_digest=digest,
                         entrypoint="images/digits-cnn/train.py")
    team = load_teams().team(TEAM)
    placement = placement_for(catalog().algorithm("digits-cnn"), team)
    # Both nodes' pods share the tier's one 2-core node: a full core each would leave one Pending.
    placement = placement.model_copy(update={"resources": placement.resources.model_copy(update={"cpu_request": "250m"})})
    store = open_store(tier_store)
    dataset_hash = snapshot_of(store).dataset_hash
    job = training_job(make_plan(f"k8s-ddp-{secrets.token_hex(4)}"), dataset_hash).model_copy(
        update={"nodes": 2, "procs_per_node": 1}
    )
    rendered = render_indexed_job(job, image, tier_store, placement, name=indexed_job_name(job, secrets.token_hex(3)),
                                  rendezvous_timeout_s=300)
    namespace = placement.namespace

    core_v1.create_namespaced_service(namespace, rendered.service)
    try:
        batch.create_namespaced_job(namespace, rendered.job)
        finished = wait_for_job_condition(batch, namespace, rendered.name, timeout_s=JOB_FINISH_TIMEOUT_S)
        pods = core_v1.list_namespaced_pod(namespace, label_selector=f"job-name={rendered.name}").items
        states = "\n".join(describe_pod(core_v1, namespace, p.metadata.name) + pod_log(core_v1, namespace, p.metadata.name)[-3000:]
                           for p in pods)
        assert {c.type for c in finished.status.conditions if c.status == "True"} >= {"Complete"}, states
        assert finished.status.succeeded == 2
        assert sorted(p.metadata.annotations["batch.kubernetes.io/job-completion-index"] for p in pods) == ["0", "1"]
        assert all(p.spec.hostname == f"{rendered.name}-{p.metadata.annotations['batch.kubernetes.io/job-completion-index']}"
                   for p in pods)
        assert tier_store.minio_secret_key not in states
    finally:
        batch.delete_namespaced_job(rendered.name, namespace, propagation_policy="Foreground")
        core_v1.delete_namespaced_service(rendered.name, namespace)

    on_cluster = TrainerResult.model_validate_json(store.get_bytes(job.result_output_key))
    assert (on_cluster.world_size, on_cluster.backend) == (2, "gloo")

    run_id = f"{job.run_id}-1x2"
    one_node = job.model_copy(update={"run_id": run_id, "output_prefix": RunLayout(run_id).train.prefix,
                                      "nodes": 1, "procs_per_node": 2})
    local_image = TrainerImage(algorithm="digits-cnn", image_reference="local", code_sha256="-",
                               entrypoint="images/digits-cnn/train.py")
    on_machine = SubprocessExecutor().run(one_node, local_image, tier_store, deadline_s=600)
    assert on_machine.weights_sha256 == on_cluster.weights_sha256  # 2x1 on the cluster == 1x2 in one process group
    assert on_machine.metrics == on_cluster.metrics
