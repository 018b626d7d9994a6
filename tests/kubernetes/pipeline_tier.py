"""What a Trainyard pipeline needs on the tier besides the cluster: MinIO on the bridge (the only
address trainer pods reach), the trainer images pushed to the tier's registry with their digests
registered in that MinIO, the store Secret in every team namespace, and one Airflow connection
per team carrying that team's worker identity (config/teams.yaml kubernetes_conn_id).

The `kubernetes_pipeline` session fixture (tests/kubernetes/conftest.py) builds one of these;
tests apply `KubernetesPipelineTier.env()` with monkeypatch and run DAGs or operators as a
worker would.
"""
from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from steps.catalog.teams import load_teams
from steps.store import StoreSettings
from tests.kubernetes.cluster import REPO_ROOT, KubernetesCluster
from tests.kubernetes.identities import ServiceAccountIdentity, airflow_kubernetes_connection
from tests.minio_server import MinioServer, ensure_minio_binaries

# Fixed, not picked: only the holder of the tier's lock has the bridge, so nothing else binds here.
TIER_MINIO_PORT = 9000
BUCKET_PREFIX = "trainyard"
ALGORITHMS = ("digits-cnn", "intent-classification")
# A cold trainer image build is ~15 min on 2 cores; a cached one only pushes and registers.
BUILD_IMAGES_TIMEOUT_S = 3600


@dataclass(frozen=True)
class KubernetesPipelineTier:
    cluster: KubernetesCluster
    minio: MinioServer
    store: StoreSettings  # where the images' digests are registered; pods and the worker share it
    images: dict[str, str]  # algorithm -> pinned reference the tier's registry serves
    team_namespaces: dict[str, str]
    connections: dict[str, str] = field(repr=False)  # AIRFLOW_CONN_<ID> -> connection JSON

    def env(self, executor: str = "kubernetes") -> dict[str, str]:
        """What a worker of this tier has in its environment (apply with monkeypatch.setenv)."""
        return {
            **store_env(self.store),
            "TRAINYARD_EXECUTOR": executor,
            **self.connections,
        }

    def secret_values(self) -> tuple[str, ...]:
        return (self.store.minio_access_key, self.store.minio_secret_key)


def store_env(store: StoreSettings) -> dict[str, str]:
    return {
        "TRAINYARD_STORE": "minio",
        "TRAINYARD_MINIO_ENDPOINT": store.minio_endpoint,
        "TRAINYARD_MINIO_SECURE": "false",
        "TRAINYARD_MINIO_ACCESS_KEY": store.minio_access_key,
        "TRAINYARD_MINIO_SECRET_KEY": store.minio_secret_key,
        "TRAINYARD_MINIO_BUCKET_PREFIX": store.bucket_prefix,
    }


def start_tier_minio(cluster: KubernetesCluster, root: Path) -> MinioServer:
    """MinIO on the tier's bridge gateway; start it only while the cluster (and so the bridge) is up."""
    minio_bin, mc_bin = ensure_minio_binaries()
    server = MinioServer(
        binary=minio_bin,
        mc_binary=mc_bin,
        data_dir=root / "data",
        log_path=root / "minio.log",
        port=TIER_MINIO_PORT,
        access_key="ty-" + secrets.token_hex(6),
        secret_key=secrets.token_urlsafe(24),
        host=cluster.node_ip,
    )
    server.start()
    return server


def build_push_and_register(cluster: KubernetesCluster, store: StoreSettings) -> dict[str, str]:
    """scripts/build-images.sh against the tier's registry and store; algorithm -> pinned reference."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-images.sh"), "--registry", cluster.registry],
        cwd=REPO_ROOT, env={**os.environ, **store_env(store)}, capture_output=True, text=True,
        timeout=BUILD_IMAGES_TIMEOUT_S, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/build-images.sh failed ({done.returncode}):\n{done.stderr[-4000:]}")
    pinned = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    missing = set(ALGORITHMS) - set(pinned)
    if missing:
        raise RuntimeError(f"scripts/build-images.sh registered no image for {sorted(missing)}: {done.stdout!r}")
    return pinned


def create_store_secrets(core: client.CoreV1Api, store: StoreSettings) -> None:
    """The Secret each team's trainer pods read the store credentials from (by secretKeyRef), as admin."""
    for team in load_teams().teams.values():
        body = {
            "metadata": {"name": team.store_secret, "labels": {"trainyard.io/team": team.name}},
            "type": "Opaque",
            "stringData": {
                "TRAINYARD_MINIO_ACCESS_KEY": store.minio_access_key,
                "TRAINYARD_MINIO_SECRET_KEY": store.minio_secret_key,
            },
        }
        try:
            core.create_namespaced_secret(team.namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
            core.replace_namespaced_secret(team.store_secret, team.namespace, body)  # a kept cluster, a new MinIO


def team_connections(cluster: KubernetesCluster, worker_of) -> dict[str, str]:
    """AIRFLOW_CONN_<ID> for each team's kubernetes_conn_id, with that team's worker identity."""
    connections = {}
    for team in load_teams().teams.values():
        identity: ServiceAccountIdentity = worker_of(team.name)
        connections[f"AIRFLOW_CONN_{team.kubernetes_conn_id.upper()}"] = airflow_kubernetes_connection(
            identity.kubeconfig, cluster.busybox_image
        )
    return connections
