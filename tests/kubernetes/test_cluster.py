"""The tier's cluster runs pods from the local registry, networks them on its own bridge, and
answers cluster DNS, including the headless-Service names distributed training rendezvous on."""
from __future__ import annotations

import ipaddress
import time

import pytest
from kubernetes import client

from tests.kubernetes.pods import pod_log, wait_for_job_condition, wait_for_pod_phase

pytestmark = pytest.mark.kubernetes


def busybox_pod(name: str, image: str, script: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{"name": "main", "image": image, "command": ["sh", "-c", script]}],
        },
    }


def test_a_pod_from_the_local_registry_runs_to_succeeded_and_its_log_reads_back(
    kubernetes_cluster, core_v1, scratch_namespace
):
    started = time.monotonic()
    core_v1.create_namespaced_pod(
        scratch_namespace,
        busybox_pod("hello", kubernetes_cluster.busybox_image, 'echo "hello from $(hostname)"; echo done'),
    )

    pod = wait_for_pod_phase(core_v1, scratch_namespace, "hello")

    print(f"pod created -> {pod.status.phase} in {time.monotonic() - started:.1f}s")
    assert pod.status.phase == "Succeeded"
    assert pod_log(core_v1, scratch_namespace, "hello").splitlines() == ["hello from hello", "done"]
    assert pod.status.host_ip == kubernetes_cluster.node_ip
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(kubernetes_cluster.pod_cidr)


def test_pods_reach_the_api_server_at_the_bridge_gateway_and_through_its_service(
    kubernetes_cluster, kubernetes_api, core_v1, scratch_namespace
):
    # busybox's wget crashes (Debian's static build), so speak plain HTTP to the TLS port with
    # nc: Go's HTTPS server answers that with a fixed 400, which proves who listens there.
    script = (
        f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 10 {kubernetes_cluster.node_ip} 6443; '
        'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 10 kubernetes.default.svc 443'
    )
    core_v1.create_namespaced_pod(scratch_namespace, busybox_pod("reach-api", kubernetes_cluster.busybox_image, script))

    pod = wait_for_pod_phase(core_v1, scratch_namespace, "reach-api")

    log = pod_log(core_v1, scratch_namespace, "reach-api")
    assert pod.status.phase == "Succeeded", log
    assert log.count("Client sent an HTTP request to an HTTPS server.") == 2, log
    # The Service's one endpoint is the API server on the bridge gateway (kube-proxy's DNAT target).
    slices = client.DiscoveryV1Api(kubernetes_api).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes"
    ).items
    assert [(address, port.port) for s in slices for e in s.endpoints for address in e.addresses for port in s.ports] == [
        (kubernetes_cluster.node_ip, 6443)
    ]


# Each worker resolves the other through the headless Service, then stays up long enough for
# the other to resolve it in turn (a record lives while its pod runs).
RENDEZVOUS_SCRIPT = """
other=$((1 - JOB_COMPLETION_INDEX))
name="$JOB_NAME-$other.$SERVICE.$NAMESPACE.svc.$CLUSTER_DOMAIN"
until answer=$(nslookup -type=a "$name"); do sleep 1; done
echo "self $POD_IP"
echo "$answer" | awk -v name="$name" '$1 == "Name:" && $2 == name {found = 1} found && $1 == "Address:" {print "peer " $2; exit}'
sleep 15
"""


def test_a_pod_resolves_an_indexed_job_peer_by_its_headless_service_name(
    kubernetes_cluster, kubernetes_api, core_v1, scratch_namespace
):
    """torchrun's rendezvous pattern: worker 1 finds worker 0 at <job>-0.<service>, and back."""
    job, service = "rdzv", "workers"
    core_v1.create_namespaced_service(scratch_namespace, {
        "metadata": {"name": service},
        "spec": {
            "clusterIP": "None",
            # Workers look each other up before they are Ready.
            "publishNotReadyAddresses": True,
            "selector": {"batch.kubernetes.io/job-name": job},
        },
    })
    env = [
        {"name": "JOB_NAME", "value": job},
        {"name": "SERVICE", "value": service},
        {"name": "CLUSTER_DOMAIN", "value": kubernetes_cluster.cluster_domain},
        {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    batch = client.BatchV1Api(kubernetes_api)
    batch.create_namespaced_job(scratch_namespace, {
        "metadata": {"name": job},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "activeDeadlineSeconds": 240,
            "template": {
                "spec": {
                    "subdomain": service,
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "worker", "image": kubernetes_cluster.busybox_image,
                                    "command": ["sh", "-c", RENDEZVOUS_SCRIPT], "env": env}],
                },
            },
        },
    })

    finished = wait_for_job_condition(batch, scratch_namespace, job)

    pods = core_v1.list_namespaced_pod(scratch_namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items
    index_of = {pod.metadata.name: pod.metadata.annotations["batch.kubernetes.io/job-completion-index"] for pod in pods}
    ip_of_index = {index_of[pod.metadata.name]: pod.status.pod_ip for pod in pods}
    logs = {index_of[pod.metadata.name]: pod_log(core_v1, scratch_namespace, pod.metadata.name).split() for pod in pods}
    assert "Complete" in {c.type for c in finished.status.conditions if c.status == "True"}, logs
    assert logs == {
        "0": ["self", ip_of_index["0"], "peer", ip_of_index["1"]],
        "1": ["self", ip_of_index["1"], "peer", ip_of_index["0"]],
    }
