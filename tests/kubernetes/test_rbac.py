"""deploy/rbac.yaml on a real API server: a team's Airflow worker may do exactly what the
provider's pod and job operators need in its team's namespace, and nothing in another's.

The matrix is asked of the API server's authorizer (SubjectAccessReview, SelfSubjectRulesReview
with the worker's own token); a real KubernetesPodOperator then runs a pod with an XCom result
under that token, and is refused in another team's namespace.
"""
from __future__ import annotations

import json
from unittest import mock

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubernetes.identities import AIRFLOW_NAMESPACE, ServiceAccountIdentity, airflow_kubernetes_connection
from tests.kubernetes.pods import restricted_security_context

pytestmark = pytest.mark.kubernetes

TEAM = "default"
OTHER_TEAM = "vision"
CONNECTION_ID = "trainyard_kubernetes_tier"

# (API group, resource, subresource, verb) the provider's operators use in a team namespace.
NEEDED = {
    *(("", "pods", "", verb) for verb in ("create", "get", "list", "watch", "delete", "patch")),
    ("", "pods", "log", "get"),
    ("", "pods", "exec", "create"),
    ("", "pods", "exec", "get"),
    ("", "events", "", "list"),
    ("", "events", "", "watch"),
    *(("batch", "jobs", "", verb) for verb in ("create", "get", "delete", "patch")),
    ("batch", "jobs", "status", "get"),
    *(("", "services", "", verb) for verb in ("create", "get", "delete")),
}
# What the worker must not do even in its own namespace.
NEVER = {
    ("", "secrets", "", "get"),
    ("", "secrets", "", "list"),
    ("", "pods", "", "update"),
    ("", "pods", "attach", "create"),
    ("", "pods", "portforward", "create"),
    ("", "configmaps", "", "create"),
    ("", "serviceaccounts", "token", "create"),
    ("", "resourcequotas", "", "delete"),
    ("", "limitranges", "", "delete"),
    ("rbac.authorization.k8s.io", "roles", "", "create"),
    ("rbac.authorization.k8s.io", "rolebindings", "", "create"),
}
# Granted to every authenticated user by Kubernetes' default roles (system:basic-user).
EVERYONE = {
    ("authorization.k8s.io", "selfsubjectaccessreviews", "", "create"),
    ("authorization.k8s.io", "selfsubjectrulesreviews", "", "create"),
    ("authentication.k8s.io", "selfsubjectreviews", "", "create"),
}


@pytest.fixture
def worker(team_worker) -> ServiceAccountIdentity:
    return team_worker(TEAM)


def allowed(api: client.ApiClient, identity: ServiceAccountIdentity, namespace: str, group: str, resource: str,
            subresource: str, verb: str) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review({
        "spec": {
            "user": identity.username,
            "groups": list(identity.groups),
            "resourceAttributes": {"namespace": namespace, "group": group, "resource": resource,
                                   "subresource": subresource, "verb": verb},
        },
    })
    return review.status.allowed


def granted_rules(identity: ServiceAccountIdentity, namespace: str) -> set[tuple[str, str, str, str]]:
    """What the API server says the identity may do in `namespace`, asked with its own token."""
    with identity.api_client() as api:
        review = client.AuthorizationV1Api(api).create_self_subject_rules_review({"spec": {"namespace": namespace}})
    granted = set()
    for rule in review.status.resource_rules:
        for group in rule.api_groups:
            for resource in rule.resources:
                resource_name, _, subresource = resource.partition("/")
                granted.update((group, resource_name, subresource, verb) for verb in rule.verbs)
    return granted


def test_the_team_worker_may_do_what_the_operators_need_in_its_team_namespace(kubernetes_api, team_namespaces, worker):
    namespace = team_namespaces[TEAM]
    refused = sorted(rule for rule in NEEDED if not allowed(kubernetes_api, worker, namespace, *rule))
    assert refused == []


def test_the_team_worker_may_read_no_secret_and_grant_itself_nothing(kubernetes_api, team_namespaces, worker):
    namespace = team_namespaces[TEAM]
    granted = sorted(rule for rule in NEVER if allowed(kubernetes_api, worker, namespace, *rule))
    assert granted == []


def test_the_team_worker_holds_exactly_the_role_rules_in_its_namespace_and_none_elsewhere(team_namespaces, worker):
    assert granted_rules(worker, team_namespaces[TEAM]) == NEEDED | EVERYONE
    for namespace in [team_namespaces[OTHER_TEAM], "default", "kube-system", AIRFLOW_NAMESPACE]:
        assert granted_rules(worker, namespace) == EVERYONE, namespace


def test_the_team_worker_may_do_nothing_in_another_team_namespace(kubernetes_api, team_namespaces, worker):
    for team, namespace in team_namespaces.items():
        if team == TEAM:
            continue
        granted = sorted(rule for rule in NEEDED | NEVER if allowed(kubernetes_api, worker, namespace, *rule))
        assert granted == [], namespace


def operator_context(task_id: str) -> dict:
    """The slice of an Airflow task context KubernetesPodOperator.execute reads."""
    ti = mock.MagicMock(map_index=-1, dag_id="kubernetes_tier", task_id=task_id, run_id="tier", try_number=1)
    return {"ti": ti, "task_instance": ti, "dag": mock.MagicMock(dag_id="kubernetes_tier"),
            "dag_run": mock.MagicMock(run_id="tier"), "run_id": "tier"}


def pod_operator(namespace: str, image: str, task_id: str):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    return KubernetesPodOperator(
        task_id=task_id,
        name=task_id,
        namespace=namespace,
        image=image,
        cmds=["sh", "-c", "echo training; echo '{\"weights_sha256\": \"abc\"}' > /airflow/xcom/return.json"],
        kubernetes_conn_id=CONNECTION_ID,
        do_xcom_push=True,
        get_logs=True,
        security_context={"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
        container_security_context=restricted_security_context(),
        xcom_sidecar_container_security_context=restricted_security_context(),
        container_resources={"limits": {"cpu": "200m", "memory": "64Mi"}, "requests": {"cpu": "10m", "memory": "16Mi"}},
        on_finish_action="delete_pod",
        startup_timeout_seconds=300,
    )


@pytest.fixture
def worker_connection(kubernetes_cluster, worker, monkeypatch) -> None:
    """The `kubernetes` connection a team's train task uses: the worker's token, a local sidecar image."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONNECTION_ID.upper()}",
        airflow_kubernetes_connection(worker.kubeconfig, kubernetes_cluster.busybox_image),
    )


def test_the_pod_operator_returns_the_xcom_result_as_the_team_worker(
    kubernetes_cluster, core_v1, team_namespaces, worker_connection
):
    namespace = team_namespaces[TEAM]
    operator = pod_operator(namespace, kubernetes_cluster.busybox_image, "rbac-probe")

    result = operator.execute(operator_context("rbac-probe"))

    assert result == {"weights_sha256": "abc"}
    pods = core_v1.list_namespaced_pod(namespace, label_selector="task_id=rbac-probe").items
    assert all(pod.metadata.deletion_timestamp for pod in pods)  # deleted, or being deleted


def test_the_pod_operator_is_refused_in_another_team_namespace(kubernetes_cluster, core_v1, team_namespaces, worker_connection):
    namespace = team_namespaces[OTHER_TEAM]
    operator = pod_operator(namespace, kubernetes_cluster.busybox_image, "rbac-trespass")

    with pytest.raises(ApiException) as refused:
        operator.execute(operator_context("rbac-trespass"))

    assert refused.value.status == 403
    # The operator first looks for a pod to reattach to; that list is already refused.
    assert json.loads(refused.value.body)["message"] == (
        f'pods is forbidden: User "system:serviceaccount:{AIRFLOW_NAMESPACE}:airflow-worker-{TEAM}" '
        f'cannot list resource "pods" in API group "" in the namespace "{namespace}"'
    )
    assert not core_v1.list_namespaced_pod(namespace, label_selector="task_id=rbac-trespass").items
