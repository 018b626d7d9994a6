"""Who talks to the tier's cluster besides the admin: a team's Airflow worker (the service
account deploy/rbac.yaml binds in that team's namespace, authenticated by a bound token), and
the Airflow `kubernetes` connection that carries it to an operator."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.kubernetes.cluster import KubernetesCluster

AIRFLOW_NAMESPACE = "airflow"
TOKEN_LIFETIME_S = 3600
# The provider's XCom sidecar declares tiny requests; limits too, so any quota admits it.
XCOM_SIDECAR_RESOURCES = {"requests": {"cpu": "1m", "memory": "10Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}


@dataclass(frozen=True)
class ServiceAccountIdentity:
    username: str  # system:serviceaccount:<namespace>:<name>
    groups: tuple[str, ...]
    kubeconfig: Path  # the cluster's server and CA, and a bound token of the service account

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))


def _create_if_missing(create, *args) -> None:
    try:
        create(*args)
    except ApiException as error:
        if error.status != 409:
            raise


def team_worker_identity(
    cluster: KubernetesCluster, core: client.CoreV1Api, team: str, directory: Path
) -> ServiceAccountIdentity:
    """Service account airflow-worker-<team> in namespace airflow (made if missing), with a token kubeconfig."""
    name = f"airflow-worker-{team}"
    _create_if_missing(core.create_namespace, {"metadata": {"name": AIRFLOW_NAMESPACE}})
    _create_if_missing(core.create_namespaced_service_account, AIRFLOW_NAMESPACE, {"metadata": {"name": name}})
    token = core.create_namespaced_service_account_token(
        name, AIRFLOW_NAMESPACE, {"spec": {"expirationSeconds": TOKEN_LIFETIME_S}}
    ).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig = directory / f"{name}.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": admin["clusters"][0]["name"], "user": name}}],
        "current-context": name,
    }))
    kubeconfig.chmod(0o600)
    return ServiceAccountIdentity(
        username=f"system:serviceaccount:{AIRFLOW_NAMESPACE}:{name}",
        groups=("system:serviceaccounts", f"system:serviceaccounts:{AIRFLOW_NAMESPACE}", "system:authenticated"),
        kubeconfig=kubeconfig,
    )


def airflow_kubernetes_connection(kubeconfig: Path, xcom_sidecar_image: str) -> str:
    """An Airflow `kubernetes` connection as JSON, for AIRFLOW_CONN_<ID>: the kubeconfig to use
    and a sidecar image the kubelet can pull (the provider's default is alpine from Docker Hub)."""
    return json.dumps({
        "conn_type": "kubernetes",
        "extra": {
            "kube_config_path": str(kubeconfig),
            "xcom_sidecar_container_image": xcom_sidecar_image,
            "xcom_sidecar_container_resources": json.dumps(XCOM_SIDECAR_RESOURCES),
        },
    })
