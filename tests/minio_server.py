"""Pytest fixtures that run a real MinIO server (built from source) for the tests.

Register with `pytest_plugins = ["tests.minio_server"]`. The shared server listens on
127.0.0.1 at a random free port (another if that one is taken before it binds), keeps its
data in a temp dir and uses credentials generated per session; it is stopped when the
session ends. No test stops or kills it: a test that crashes a server gets its own.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import urllib3
from minio import Minio

from steps.store.minio_store import MinioStore
from steps.store.settings import StoreSettings
from tests.ports import PortInUse, start_on_a_free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_BIN = Path(os.environ.get("MINIO_TOOLS_BIN", REPO_ROOT / ".tools" / "bin"))
ENSURE_SCRIPT = REPO_ROOT / "scripts" / "ensure-minio.sh"
READY_TIMEOUT_S = 120.0
BUILD_TIMEOUT_S = 1800.0  # compiling minio and mc from source on a loaded 2-core machine
STOP_TIMEOUT_S = 15.0


def ensure_minio_binaries() -> tuple[Path, Path]:
    """Paths of the minio and mc binaries, building them first when missing or from another pin.

    The script returns at once when both are built from the pinned versions.
    """
    subprocess.run(["bash", str(ENSURE_SCRIPT)], check=True, env={**os.environ, "MINIO_TOOLS_BIN": str(TOOLS_BIN)},
                   timeout=BUILD_TIMEOUT_S)
    return TOOLS_BIN / "minio", TOOLS_BIN / "mc"


@dataclass
class MinioServer:
    """One `minio server` process; stop()/start() keep its port, data and credentials."""

    binary: Path
    mc_binary: Path
    data_dir: Path
    log_path: Path
    port: int
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)
    host: str = "127.0.0.1"  # the Kubernetes tier's MinIO listens on its bridge, where pods reach it

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def settings(self, **overrides) -> StoreSettings:
        values = dict(
            backend="minio",
            minio_endpoint=self.endpoint,
            minio_secure=False,
            minio_access_key=self.access_key,
            minio_secret_key=self.secret_key,
            bucket_prefix="trainyard",
        )
        values.update(overrides)
        return StoreSettings(**values)

    def env(self) -> dict[str, str]:
        """Environment for the server, and for `mc` through MC_HOST_<alias>."""
        return {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",  # no console: one port, nothing else to collide
            "MINIO_UPDATE": "off",
            "MC_HOST_test": f"http://{self.access_key}:{self.secret_key}@{self.endpoint}",
            "MC_CONFIG_DIR": str(self.data_dir.parent / "mc-config"),
        }

    def mc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run `mc` against this server under the alias 'test'."""
        return subprocess.run([str(self.mc_binary), "--quiet", *args], env=self.env(), check=check,
                              capture_output=True, text=True)

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(self.binary), "server", str(self.data_dir), "--address", self.endpoint, "--quiet"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                if "port is already in use" in self.log_path.read_text(errors="replace")[-2000:]:
                    raise PortInUse(f"minio server: port {self.port} is taken")
                raise RuntimeError(f"minio server exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/minio/health/ready", timeout=2) as response:
                    if response.status == 200 and self._answers_s3():
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"minio server on {self.endpoint} not ready after {READY_TIMEOUT_S}s; see {self.log_path}")

    def _answers_s3(self) -> bool:
        # health/ready can pass while S3 calls still get XMinioServerNotInitialized.
        client = Minio(
            self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False,
            http_client=urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2.0, read=5.0)),
        )
        try:
            client.list_buckets()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash would: no graceful shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()


def start_minio_server(root: Path) -> MinioServer:
    """A new server with its own data, credentials and port (retried if the port is taken)."""
    minio_bin, mc_bin = ensure_minio_binaries()
    access_key, secret_key = "ty-" + secrets.token_hex(6), secrets.token_urlsafe(24)

    def start(port: int) -> MinioServer:
        server = MinioServer(binary=minio_bin, mc_binary=mc_bin, data_dir=root / "data", log_path=root / "minio.log",
                             port=port, access_key=access_key, secret_key=secret_key)
        server.start()
        return server

    return start_on_a_free_port(start, "minio server")


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """The session's shared server. Tests that crash a server use private_minio_server instead."""
    server = start_minio_server(tmp_path_factory.mktemp("minio"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A server of this test's own, which it may kill and restart without touching other tests."""
    server = start_minio_server(tmp_path_factory.mktemp("minio-private"))
    try:
        yield server
    finally:
        server.stop()


def unique_bucket_prefix() -> str:
    return "ty-" + uuid.uuid4().hex[:12]


@pytest.fixture
def minio_store(minio_server: MinioServer) -> MinioStore:
    """A MinioStore with buckets of its own (unique bucket_prefix per test)."""
    return MinioStore(minio_server.settings(bucket_prefix=unique_bucket_prefix()))
