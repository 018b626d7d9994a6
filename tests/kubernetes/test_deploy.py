"""deploy/ on a real API server: server-side apply accepts every object, and the namespaces then
enforce what docs/kubernetes.md promises (restricted Pod Security, quota, LimitRange defaults)."""
from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubernetes.conftest import DEPLOY_DIR, apply_deploy
from tests.kubernetes.pods import restricted_security_context, wait_for_pod_phase

pytestmark = pytest.mark.kubernetes

QUOTA_NAME = "trainyard-training"


def namespaced_objects(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """kind/name -> resourceVersion of what deploy/ puts in a team namespace."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    listed = {
        "ResourceQuota": core.list_namespaced_resource_quota(namespace).items,
        "LimitRange": core.list_namespaced_limit_range(namespace).items,
        "Role": rbac.list_namespaced_role(namespace).items,
        "RoleBinding": rbac.list_namespaced_role_binding(namespace).items,
    }
    return {f"{kind}/{item.metadata.name}": item.metadata.resource_version for kind, items in listed.items() for item in items}


def test_deploy_is_accepted_by_server_side_apply_and_reapplying_changes_nothing(
    kubernetes_cluster, kubernetes_api, core_v1, team_namespaces
):
    before = {ns: namespaced_objects(kubernetes_api, ns) for ns in team_namespaces.values()}

    apply_deploy(kubernetes_cluster)

    for team, namespace in team_namespaces.items():
        labels = core_v1.read_namespace(namespace).metadata.labels
        assert labels["trainyard.io/team"] == team
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert set(before[namespace]) == {
            f"ResourceQuota/{QUOTA_NAME}", "LimitRange/trainyard-container-defaults",
            "Role/trainyard-trainer-pods", "RoleBinding/airflow-trainer-pods",
        }
    assert {ns: namespaced_objects(kubernetes_api, ns) for ns in team_namespaces.values()} == before


def test_the_store_secret_template_is_a_valid_secret_for_every_team_namespace(kubernetes_cluster, team_namespaces):
    result = kubernetes_cluster.run_kubectl(
        "apply", "--server-side", "--dry-run=server", "-o", "json", "-f", str(DEPLOY_DIR / "store-secret.template.yaml")
    )
    secrets = json.loads(result.stdout)["items"]
    assert sorted(s["metadata"]["namespace"] for s in secrets) == sorted(team_namespaces.values())
    assert {s["metadata"]["name"] for s in secrets} == {"trainyard-store"}


def test_a_restricted_pod_without_limits_gets_the_limitrange_defaults_and_runs_under_the_quota(
    kubernetes_cluster, core_v1, team_namespaces
):
    namespace = team_namespaces["default"]
    core_v1.create_namespaced_pod(namespace, {
        "metadata": {"name": "limitrange-defaults", "labels": {"trainyard.io/test": "kubernetes-tier"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "main", "image": kubernetes_cluster.busybox_image, "command": ["sh", "-c", "echo ok"],
                "securityContext": restricted_security_context(),
            }],
        },
    })
    try:
        pod = wait_for_pod_phase(core_v1, namespace, "limitrange-defaults")
        assert pod.status.phase == "Succeeded"
        resources = pod.spec.containers[0].resources
        assert resources.limits == {"cpu": "100m", "memory": "64Mi"}
        assert resources.requests == {"cpu": "1m", "memory": "10Mi"}
    finally:
        core_v1.delete_namespaced_pod("limitrange-defaults", namespace, grace_period_seconds=0)


def test_pod_security_refuses_a_pod_that_may_run_as_root_in_a_team_namespace(kubernetes_cluster, core_v1, team_namespaces):
    namespace = team_namespaces["default"]
    with pytest.raises(ApiException) as refused:
        core_v1.create_namespaced_pod(namespace, {
            "metadata": {"name": "may-run-as-root"},
            "spec": {"containers": [{"name": "main", "image": kubernetes_cluster.busybox_image,
                                     "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]},
        })

    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "runAsNonRoot != true" in message


def test_a_pod_over_the_team_quota_is_refused_with_a_message_naming_the_quota(kubernetes_cluster, core_v1, team_namespaces):
    namespace = team_namespaces["default"]
    quota = core_v1.read_namespaced_resource_quota(QUOTA_NAME, namespace)
    over_quota_memory = f"{int(quota.spec.hard['limits.memory'].removesuffix('Gi')) + 1}Gi"

    with pytest.raises(ApiException) as refused:
        core_v1.create_namespaced_pod(namespace, {
            "metadata": {"name": "over-quota"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main", "image": kubernetes_cluster.busybox_image,
                    "securityContext": restricted_security_context(),
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                  "limits": {"cpu": "1", "memory": over_quota_memory}},
                }],
            },
        })

    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    # "used" depends on what else runs in the namespace; the rest is the whole message.
    assert message.startswith(
        f'pods "over-quota" is forbidden: exceeded quota: {QUOTA_NAME}, requested: limits.memory={over_quota_memory}, used: '
    )
    assert message.endswith(f"limited: limits.memory={quota.spec.hard['limits.memory']}")
    assert not core_v1.list_namespaced_pod(namespace, field_selector="metadata.name=over-quota").items
