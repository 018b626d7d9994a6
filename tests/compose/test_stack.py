"""docker-compose.yml brought up for real (make test-compose): podman serves the Docker API, the
Compose CLI built from source drives it, tests/compose/podman.yml swaps in locally built stand-ins
for the base images this machine cannot pull. Build (MinIO from source, Airflow), reach healthy,
trigger training_pipeline through the REST API, find the model in the stack's MinIO, tear down.

Not in `make test`: the cold builds alone take longer than CI's budget allows.
"""
from __future__ import annotations

import secrets
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from steps.hashing import sha256_bytes
from steps.lifecycle.model_registry import load_manifest
from steps.store import StoreAuthError, StoreSettings
from steps.store.minio_store import MinioStore
from tests.e2e.airflow_api import AirflowClient
from tests.ports import free_port

pytestmark = pytest.mark.compose

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "compose-podman.sh"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
STAND_INS_TIMEOUT_S = 3600
BUILD_TIMEOUT_S = 5400  # MinIO compiled from source and Airflow's wheels, cold, on 2 loaded cores
HEALTHY_TIMEOUT_S = 1800
SOCKET_TIMEOUT_S = 60
RUN_TIMEOUT_S = 1800
PORT_ATTEMPTS = 3
CONF = {"dataset": "intents", "algorithm": "intent-classification", "epochs": 2, "learning_rate": 0.05,
        "batch_size": 16, "seed": 5}


@dataclass
class ComposeStack:
    project: str
    socket: Path
    env_file: Path
    env: dict[str, str]

    def write_env(self, values: dict[str, str]) -> None:
        self.env = values
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))

    def compose(self, *args: str, timeout_s: float, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(SCRIPT), "compose", str(self.socket), "-p", self.project, "--env-file", str(self.env_file), *args],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=check,
        )


def stack_env_values() -> dict[str, str]:
    """A fresh .env: new secrets, and every published port on a port of its own (none of the defaults)."""
    token = lambda: secrets.token_urlsafe(18)  # noqa: E731 - URL-safe, as .env.example asks
    return {
        "POSTGRES_PASSWORD": token(),
        "MINIO_ROOT_USER": "trainyard-root",
        "MINIO_ROOT_PASSWORD": token(),
        "MINIO_API_PORT": str(free_port()),
        "MINIO_CONSOLE_PORT": str(free_port()),
        "TRAINYARD_MINIO_ACCESS_KEY": "trainyard-store",
        "TRAINYARD_MINIO_SECRET_KEY": token(),
        "TRAINYARD_MINIO_BUCKET_PREFIX": "trainyard",
        "TRAINYARD_MINIO_OBJECT_LOCK_DAYS": "0",
        "TRAINYARD_EXECUTOR": "subprocess",
        "AIRFLOW_API_PORT": str(free_port()),
        "TENSORBOARD_PORT": str(free_port()),
        "AIRFLOW_ADMIN_USER": "admin",
        "AIRFLOW_ADMIN_PASSWORD": token(),
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_API_SECRET_KEY": token(),
        "AIRFLOW_JWT_SECRET": token(),
    }


def _wait_for_socket(socket: Path, service: subprocess.Popen) -> None:
    deadline = time.monotonic() + SOCKET_TIMEOUT_S
    while not socket.exists():
        if service.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"podman system service did not open {socket} within {SOCKET_TIMEOUT_S}s")
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def up(stack: ComposeStack, *args: str) -> None:
    """`docker compose up --detach --wait ARGS`, with new ports when a published one was taken."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        started = stack.compose("up", "--detach", "--wait", "--wait-timeout", str(HEALTHY_TIMEOUT_S), *args,
                                timeout_s=BUILD_TIMEOUT_S + HEALTHY_TIMEOUT_S, check=False)
        if started.returncode == 0:
            return
        # A port taken between free_port() and podman's bind: take new ones; anything else fails.
        if "address already in use" not in started.stderr or attempt == PORT_ATTEMPTS:
            # The services' own last lines say why one stayed unhealthy; compose's progress lines do not.
            logs = stack.compose("logs", "--no-color", "--tail", "30", timeout_s=300, check=False)
            pytest.fail(f"docker compose up {' '.join(args)} failed ({started.returncode}):\n{started.stderr[-3000:]}"
                        f"\n--- last lines of each service:\n{logs.stdout[-8000:]}")
        stack.compose("down", "--volumes", "--remove-orphans", timeout_s=600, check=False)
        stack.write_env(stack_env_values())


@pytest.fixture(scope="module")
def compose_stack() -> Iterator[ComposeStack]:
    """A compose project on podman's Docker API; each test brings up what it needs."""
    subprocess.run(["bash", str(SCRIPT), "stand-ins"], cwd=REPO_ROOT, check=True, timeout=STAND_INS_TIMEOUT_S)
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-compose-"))
    socket = workdir / "podman.sock"
    logs = open(workdir / "podman-service.log", "wb")
    service = subprocess.Popen(["bash", str(SCRIPT), "serve", str(socket)], stdout=logs, stderr=subprocess.STDOUT,
                               start_new_session=True)
    project = "trainyard-test-" + uuid.uuid4().hex[:8]
    ticker = subprocess.Popen(["bash", str(SCRIPT), "healthchecks", project], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    stack = ComposeStack(project, socket, workdir / ".env", {})
    stack.write_env(stack_env_values())
    try:
        _wait_for_socket(socket, service)
        yield stack
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        logs_out = stack.compose("logs", "--no-color", "--tail", "300", timeout_s=300, check=False)
        (ARTIFACTS / "compose-stack.log").write_text(logs_out.stdout + logs_out.stderr)
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout_s=900, check=False)
        _stop(ticker)
        _stop(service)
        logs.close()


def store_user_settings(env: dict[str, str], bucket_prefix: str | None = None) -> StoreSettings:
    return StoreSettings(
        backend="minio", minio_endpoint=f"127.0.0.1:{env['MINIO_API_PORT']}", minio_access_key=env["TRAINYARD_MINIO_ACCESS_KEY"],
        minio_secret_key=env["TRAINYARD_MINIO_SECRET_KEY"], bucket_prefix=bucket_prefix or env["TRAINYARD_MINIO_BUCKET_PREFIX"],
    )


def test_store_services_come_up_healthy_and_init_minio_confines_the_store_user(compose_stack: ComposeStack) -> None:
    """PostgreSQL and MinIO (built from source) healthy; init-minio's buckets and the store's own user."""
    up(compose_stack, "--build", "postgres", "minio")
    init = compose_stack.compose("run", "--rm", "init-minio", timeout_s=600, check=False)
    assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
    env = compose_stack.env
    store = MinioStore(store_user_settings(env))
    store.put_bytes("runs/compose-check/hello.json", b"{}")
    assert store.get_bytes("runs/compose-check/hello.json") == b"{}"
    with pytest.raises(StoreAuthError):  # confined to its prefix's buckets
        MinioStore(store_user_settings(env, bucket_prefix="elsewhere"), retry_attempts=1).put_bytes("runs/x/y.json", b"{}")
    assert env["TRAINYARD_MINIO_SECRET_KEY"] not in init.stdout + init.stderr


def test_the_compose_stack_trains_and_registers_a_model_in_its_own_minio(compose_stack: ComposeStack) -> None:
    up(compose_stack, "--build")  # every service: builds the Airflow image, waits for healthy and the one-shots
    env = compose_stack.env
    api = AirflowClient(f"http://127.0.0.1:{env['AIRFLOW_API_PORT']}", env["AIRFLOW_ADMIN_USER"], env["AIRFLOW_ADMIN_PASSWORD"])
    api.wait_for_dag("training_pipeline")
    api.unpause("training_pipeline")
    run = api.run_to_success("training_pipeline", CONF, timeout_s=RUN_TIMEOUT_S)
    registered = api.xcom("training_pipeline", run["dag_run_id"], "register")
    assert registered["model_name"] == "intents-intent-classification"

    store = MinioStore(store_user_settings(env))
    manifest = load_manifest(store, registered["model_name"], registered["version"])
    weights = store.get_bytes(f"models/{manifest.model_name}/versions/{manifest.version}/weights.safetensors")
    assert sha256_bytes(weights) == manifest.weights_sha256 == registered["weights_sha256"]
    assert manifest.airflow.run_id == run["dag_run_id"] and manifest.executor == "subprocess"
