"""The single-node Kubernetes test tier as tests see it: bring-up, teardown and a typed handle.

scripts/kubernetes/up.sh starts the cluster and writes cluster.json (read here into
`KubernetesCluster`); scripts/kubernetes/down.sh tears it down and fails if anything is left.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO_ROOT / "scripts" / "kubernetes"
TOOLS_DIR = REPO_ROOT / ".tools" / "kubernetes"
TOOLS_BIN = TOOLS_DIR / "bin"
# The lock up.sh and down.sh take (scripts/kubernetes/settings.sh); a test session holds it
# from bring-up to teardown, because the tier's ports and bridge are fixed: one cluster a machine.
LOCK_FILE = TOOLS_DIR / "cluster.lock"
LOCK_HOLDER_FILE = TOOLS_DIR / "cluster.lock.holder"
# A whole other test session may be ahead in the queue (make test-kubernetes: ~10 min warm).
LOCK_WAIT_TIMEOUT_S = 3600
LOCK_WAIT_REPORT_S = 60
KUBERNETES_VERSION = "1.34.4"
# Generous: on a loaded 2-core machine the API server alone has taken 10 s to get ready, and a
# first bring-up also pushes the tier's images into the registry.
BRING_UP_TIMEOUT_S = 900
TEAR_DOWN_TIMEOUT_S = 300


class ClusterError(RuntimeError):
    """A tier script or kubectl failed; the message carries the end of its output."""


@dataclass(frozen=True)
class KubernetesCluster:
    """How to reach the tier's cluster, and where pods reach the machine."""

    kubernetes_version: str
    kubeconfig: Path  # admin (system:masters); the API server's URL is inside
    api_server_url: str
    node_name: str
    # The trainyard0 bridge's gateway: node IP, API server and DNS address as pods see them.
    # A server pods must reach (the tier's MinIO) listens on this address.
    node_ip: str
    bridge: str  # the network interface the tier creates for pods (its address is node_ip)
    pod_cidr: str
    service_cidr: str
    cluster_dns_ip: str
    cluster_domain: str
    registry: str  # host:port the kubelet pulls from over plain http; push images here
    busybox_image: str  # sh, nslookup, nc: test pods and the XCom sidecar
    pause_image: str
    kubectl: Path
    run_dir: Path
    logs_dir: Path

    @classmethod
    def from_json(cls, path: Path) -> KubernetesCluster:
        values = json.loads(path.read_text())
        for key in ("kubeconfig", "kubectl", "run_dir", "logs_dir"):
            values[key] = Path(values[key])
        return cls(**values)

    def api_client(self) -> client.ApiClient:
        """A client with the admin (system:masters) credentials."""
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def run_kubectl(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
        """kubectl (the tier's own build) as admin; raises with kubectl's stderr on failure."""
        result = subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT, check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result


def tools_are_built() -> bool:
    stamp = TOOLS_BIN / ".kubernetes.version"
    return stamp.is_file() and stamp.read_text().startswith(f"k8s.io/kubernetes@v{KUBERNETES_VERSION} ")


def cluster_is_up() -> bool:
    return subprocess.run(["bash", str(SCRIPTS_DIR / "status.sh")], capture_output=True, check=False).returncode == 0


@contextmanager
def exclusive_cluster() -> Iterator[None]:
    """Hold the tier's lock: another test session on this machine queues here (saying so on
    the terminal) instead of sharing the cluster and tearing it down under this one."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as lock:
        started = time.monotonic()
        next_report_s = 0.0
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited_s = time.monotonic() - started
                if waited_s > LOCK_WAIT_TIMEOUT_S:
                    raise ClusterError(
                        f"the Kubernetes tier stayed locked by {_lock_holder()} for {waited_s:.0f}s ({LOCK_FILE})"
                    ) from None
                if waited_s >= next_report_s:
                    next_report_s += LOCK_WAIT_REPORT_S
                    # Straight to the terminal: pytest captures a fixture's output until the test ends.
                    print(
                        f"\nwaiting for the Kubernetes tier ({waited_s:.0f}s so far): it is in use by "
                        f"{_lock_holder()}; only one cluster can run on this machine",
                        file=sys.__stderr__, flush=True,
                    )
                time.sleep(1)
        LOCK_HOLDER_FILE.write_text(f"pid {os.getpid()} ({' '.join(sys.argv)[:200]}) since {time.strftime('%H:%M:%S')}\n")
        try:
            yield
        finally:
            LOCK_HOLDER_FILE.unlink(missing_ok=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


def _lock_holder() -> str:
    try:
        return LOCK_HOLDER_FILE.read_text().strip() or "another process"
    except OSError:
        return "another process (make k8s-up or k8s-down)"


def _run_script(name: str, timeout_s: float) -> str:
    # The caller holds the lock (exclusive_cluster); the script must not wait for it.
    env = {**os.environ, "TRAINYARD_KUBERNETES_LOCK_HELD": "1"}
    try:
        result = subprocess.run(
            ["bash", str(SCRIPTS_DIR / name)], capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT,
            check=False, env=env,
        )
    except subprocess.TimeoutExpired as error:
        raise ClusterError(f"scripts/kubernetes/{name} did not finish within {timeout_s:.0f}s") from error
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise ClusterError(f"scripts/kubernetes/{name} failed ({result.returncode}):\n{tail}")
    return result.stdout


def bring_up() -> KubernetesCluster:
    """Start the cluster (a no-op when it is up) and return its handle."""
    kubeconfig = Path(_run_script("up.sh", BRING_UP_TIMEOUT_S).strip().splitlines()[-1])
    return KubernetesCluster.from_json(kubeconfig.parent.parent / "cluster.json")


def tear_down() -> None:
    """Stop everything the tier started; raises if anything of it is left behind."""
    _run_script("down.sh", TEAR_DOWN_TIMEOUT_S)
