"""Fixtures of the real single-node Kubernetes tier (marker `kubernetes`; `make test-kubernetes`).

`kubernetes_cluster` brings the cluster up once per session (scripts/kubernetes/up.sh) and
tears down what it started; a cluster that was already up (`make k8s-up`) is left running.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubernetes.cluster import (
    KUBERNETES_VERSION,
    REPO_ROOT,
    KubernetesCluster,
    bring_up,
    cluster_is_up,
    exclusive_cluster,
    tear_down,
    tools_are_built,
)
from tests.kubernetes.identities import ServiceAccountIdentity, team_worker_identity
from tests.kubernetes.pipeline_tier import (
    BUCKET_PREFIX,
    KubernetesPipelineTier,
    build_push_and_register,
    create_store_secrets,
    start_tier_minio,
    team_connections,
)

DEPLOY_DIR = REPO_ROOT / "deploy"
TEAMS_PATH = REPO_ROOT / "config" / "teams.yaml"
# The field manager that owns what deploy/ sets, as a GitOps tool's would.
DEPLOY_FIELD_MANAGER = "trainyard-deploy"
SERVICE_ACCOUNT_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def kubernetes_cluster() -> Iterator[KubernetesCluster]:
    if not tools_are_built():
        pytest.fail(
            f"Kubernetes v{KUBERNETES_VERSION} is not built in .tools/kubernetes/bin: run "
            "scripts/ensure-kubernetes.sh (a cold build takes 12-25 min) or make test-kubernetes",
            pytrace=False,
        )
    with exclusive_cluster():
        already_up = cluster_is_up()
        cluster = bring_up()
        try:
            yield cluster
        finally:
            if not already_up:
                tear_down()


@pytest.fixture(scope="session")
def kubernetes_api(kubernetes_cluster: KubernetesCluster) -> Iterator[client.ApiClient]:
    api = kubernetes_cluster.api_client()
    yield api
    api.close()


@pytest.fixture(scope="session")
def core_v1(kubernetes_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kubernetes_api)


def wait_for_default_service_account(core: client.CoreV1Api, namespace: str) -> None:
    """Pods are refused until the controller manager has made the namespace's `default` account."""
    deadline = time.monotonic() + SERVICE_ACCOUNT_TIMEOUT_S
    while True:
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.25)


@pytest.fixture
def scratch_namespace(core_v1: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace without quota or Pod Security enforcement, deleted after the test."""
    name = f"tier-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace({"metadata": {"name": name, "labels": {"trainyard.io/test": "kubernetes-tier"}}})
    wait_for_default_service_account(core_v1, name)
    yield name
    core_v1.delete_namespace(name, propagation_policy="Background")


def team_namespace_names() -> dict[str, str]:
    """team -> namespace, as config/teams.yaml configures them."""
    teams = yaml.safe_load(TEAMS_PATH.read_text())
    return {team: entry["namespace"] for team, entry in teams.items()}


def apply_deploy(cluster: KubernetesCluster) -> str:
    """Server-side apply of deploy/ (kustomization): the API server validates every object."""
    return cluster.run_kubectl(
        "apply", "--server-side", f"--field-manager={DEPLOY_FIELD_MANAGER}", "-k", str(DEPLOY_DIR)
    ).stdout


@pytest.fixture(scope="session")
def team_namespaces(kubernetes_cluster: KubernetesCluster, core_v1: client.CoreV1Api) -> dict[str, str]:
    """deploy/ applied to the cluster; team -> namespace, each ready for pods."""
    apply_deploy(kubernetes_cluster)
    namespaces = team_namespace_names()
    for namespace in namespaces.values():
        wait_for_default_service_account(core_v1, namespace)
    return namespaces


@pytest.fixture(scope="session")
def team_worker(
    kubernetes_cluster: KubernetesCluster, core_v1: client.CoreV1Api, team_namespaces: dict[str, str], tmp_path_factory
) -> Callable[[str], ServiceAccountIdentity]:
    """team -> the Airflow worker identity deploy/rbac.yaml binds in that team's namespace."""
    directory = tmp_path_factory.mktemp("team-workers")
    identities: dict[str, ServiceAccountIdentity] = {}

    def identity(team: str) -> ServiceAccountIdentity:
        if team not in identities:
            identities[team] = team_worker_identity(kubernetes_cluster, core_v1, team, directory)
        return identities[team]

    return identity


@pytest.fixture(scope="session")
def kubernetes_pipeline(
    kubernetes_cluster: KubernetesCluster,
    core_v1: client.CoreV1Api,
    team_namespaces: dict[str, str],
    team_worker: Callable[[str], ServiceAccountIdentity],
    tmp_path_factory,
) -> Iterator[KubernetesPipelineTier]:
    """Everything a training_pipeline run needs on the tier: MinIO on the bridge, the trainer
    images in the tier's registry with digests registered, the store Secret in every team
    namespace and a kubernetes_<team> Airflow connection per team (apply `.env()`)."""
    minio = start_tier_minio(kubernetes_cluster, tmp_path_factory.mktemp("tier-minio"))
    try:
        store = minio.settings(bucket_prefix=BUCKET_PREFIX)
        images = build_push_and_register(kubernetes_cluster, store)
        create_store_secrets(core_v1, store)
        yield KubernetesPipelineTier(
            cluster=kubernetes_cluster,
            minio=minio,
            store=store,
            images=images,
            team_namespaces=team_namespaces,
            connections=team_connections(kubernetes_cluster, team_worker),
        )
    finally:
        minio.stop()


@pytest.fixture
def pipeline_env(kubernetes_pipeline: KubernetesPipelineTier, monkeypatch) -> KubernetesPipelineTier:
    """A test that runs as the tier's Airflow worker: store, executor and connections in its env."""
    for name, value in kubernetes_pipeline.env().items():
        monkeypatch.setenv(name, value)
    return kubernetes_pipeline
