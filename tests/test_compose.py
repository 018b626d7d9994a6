"""docker-compose.yml: no Docker engine runs here, so the stack is checked by parsing it,
by `docker compose config` when the compose CLI is installed, and by running its two init
scripts against the real MinIO and a real PostgreSQL + Airflow CLI."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from operators.connections import MINIO_CONN_ID
from steps.catalog.teams import load_teams
from steps.store.minio_store import MinioStore
from steps.store.settings import StoreSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
AIRFLOW_SERVICES = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
SECRET_NAME_RE = re.compile(r"PASSWORD(?!S_FILE)|SECRET|ACCESS_KEY|FERNET_KEY")
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")


def compose_text() -> str:
    return COMPOSE_FILE.read_text()


def compose() -> dict:
    return yaml.safe_load(compose_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, enough for this file."""
    def one(match: re.Match) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op == "-":
            return arg
        raise KeyError(f"{name} is required: {arg}")
    return VAR_RE.sub(one, value)


def is_one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def kubernetes_conn_id_of_train_operator() -> str:
    """The connection the default team's train task creates its pods with (config/teams.yaml)."""
    from steps.catalog.teams import load_teams

    return load_teams().team("default").kubernetes_conn_id


# -- structure ---------------------------------------------------------------------------------

def test_every_service_has_an_image_or_a_build():
    missing = [name for name, svc in services().items() if not (svc.get("image") or svc.get("build"))]
    assert not missing, f"services without image or build: {missing}"


def test_the_stack_has_postgres_minio_the_four_airflow_components_init_services_and_tensorboard():
    assert set(services()) == {"postgres", "minio", "init-minio", "init-airflow", "tensorboard", *AIRFLOW_SERVICES}
    for name in AIRFLOW_SERVICES:
        assert services()[name]["build"]["dockerfile"] == "images/airflow/Dockerfile"
    assert services()["minio"]["build"]["context"] == "images/minio"


def test_the_compose_tier_builds_every_built_service_from_stand_ins_and_moves_every_published_port():
    """make test-compose cannot pull: a service that builds without tests/compose/podman.yml's stand-in
    base tries docker.io (the tensorboard service once did), and a published port left at its default
    collides with whatever else this machine runs."""
    from tests.compose.test_stack import stack_env_values

    overrides = yaml.safe_load((REPO_ROOT / "tests" / "compose" / "podman.yml").read_text())["services"]
    for name, service in services().items():
        if "build" in service:
            assert "args" in overrides.get(name, {}).get("build", {}), f"{name} builds FROM a base podman cannot pull"
        else:
            assert overrides[name]["image"].startswith("localhost/trainyard-stand-in/"), name
    published = {match.group(1) for service in services().values() for port in service.get("ports", [])
                 for match in VAR_RE.finditer(port)}
    assert published and published <= set(stack_env_values())


def test_every_long_running_service_has_a_healthcheck():
    long_running = {name: svc for name, svc in services().items() if not is_one_shot(svc)}
    assert set(long_running) == {"postgres", "minio", "tensorboard", *AIRFLOW_SERVICES}
    missing = [name for name, svc in long_running.items() if not svc.get("healthcheck", {}).get("test")]
    assert not missing, f"long-running services without a healthcheck: {missing}"


def test_exec_form_health_checks_have_no_argument_with_spaces():
    """podman 4.3's Docker API splits each argument of a ["CMD", ...] check on whitespace (make
    test-compose): `python -c "import urllib.request; ..."` ran `python -c import`, failed forever,
    and the api-server never became healthy."""
    for name, service in services().items():
        test = service.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD":
            assert not [arg for arg in test[1:] if any(c.isspace() for c in arg)], f"{name}: {test}"


def test_http_ok_health_check_passes_on_2xx_and_fails_in_one_line_otherwise(tmp_path):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: the OS picks, we hold it
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    script = REPO_ROOT / "images" / "airflow" / "http_ok.py"
    try:
        ok = subprocess.run([sys.executable, str(script), f"{base}/health"], capture_output=True, text=True, timeout=60)
        down = subprocess.run([sys.executable, str(script), f"{base}/other"], capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert ok.returncode == 0, ok.stderr
    assert down.returncode == 1 and down.stderr.count("\n") == 1 and "503" in down.stderr


def test_dependencies_wait_for_health_or_for_a_successful_one_shot():
    all_services = services()
    for name, svc in all_services.items():
        depends_on = svc.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must name a condition per service"
        for target, spec in depends_on.items():
            assert target in all_services, f"{name} depends on unknown service {target!r}"
            assert target != name, f"{name} depends on itself"
            expected = "service_completed_successfully" if is_one_shot(all_services[target]) else "service_healthy"
            assert spec.get("condition") == expected, f"{name} -> {target}: condition should be {expected}"
    for name in AIRFLOW_SERVICES:
        assert {"postgres", "minio", "init-minio", "init-airflow"} <= set(all_services[name]["depends_on"])


def test_airflow_services_share_one_environment():
    all_services = services()
    envs = [all_services[name]["environment"] for name in AIRFLOW_SERVICES]
    assert all(env == envs[0] for env in envs), "airflow services must share the x-airflow-env anchor"
    # init-airflow adds only its own secrets to the same env.
    init_env = all_services["init-airflow"]["environment"]
    assert {k: v for k, v in init_env.items() if k in envs[0]} == envs[0]
    assert envs[0]["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/trainyard/dags"
    assert envs[0]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert ".:/opt/trainyard:ro" in all_services["airflow-scheduler"]["volumes"]


def test_tensorboard_serves_every_run_from_the_stacks_store_with_the_store_users_keys():
    service = services()["tensorboard"]
    assert service["build"]["dockerfile"] == "images/airflow/Dockerfile"
    assert service["entrypoint"] == ["/opt/venv/bin/trainyard"]
    assert service["command"][:2] == ["tensorboard", "--all-runs"]
    env = {k: interpolate(str(v), env_example()) for k, v in service["environment"].items()}
    assert env["TRAINYARD_STORE"] == "minio" and env["TRAINYARD_MINIO_ENDPOINT"] == "minio:9000"
    assert env["TRAINYARD_MINIO_ACCESS_KEY"] == env_example()["TRAINYARD_MINIO_ACCESS_KEY"]  # the store user, not root
    assert {"minio", "init-minio"} <= set(service["depends_on"])


def test_airflow_env_names_the_connection_ids_the_operators_read():
    env = services()["airflow-scheduler"]["environment"]
    assert env["TRAINYARD_MINIO_CONN_ID"] == MINIO_CONN_ID
    assert env["TRAINYARD_KUBERNETES_CONN_ID"] == kubernetes_conn_id_of_train_operator()


def test_airflow_tasks_use_the_minio_store_with_keys_only_from_the_connection():
    env = services()["airflow-scheduler"]["environment"]
    settings = StoreSettings.from_env({k: interpolate(str(v), env_example()) for k, v in env.items()})
    assert settings.backend == "minio"
    assert settings.minio_endpoint == "minio:9000" and not settings.minio_secure
    assert settings.bucket_prefix == env_example()["TRAINYARD_MINIO_BUCKET_PREFIX"]
    # No keys in the shared env, so operators/connections.py fills them from minio_default.
    assert settings.minio_access_key == "" and settings.minio_secret_key == ""


def test_every_variable_the_compose_file_uses_is_defined_in_env_example():
    used = {match.group(1) for match in VAR_RE.finditer(compose_text())}
    undefined = sorted(used - set(env_example()))
    assert not undefined, f"${{VAR}}s missing from .env.example: {undefined}"


def test_compose_file_holds_no_literal_secrets():
    text = compose_text()
    example = env_example()
    for name, value in example.items():
        if SECRET_NAME_RE.search(name):
            assert value not in text, f"the example value of {name} is written into docker-compose.yml"

    def check(env: dict, where: str) -> None:
        for key, value in env.items():
            value = str(value)
            if SECRET_NAME_RE.search(key):
                assert re.fullmatch(r"\$\{[^}]+\}", value), f"{where}: {key} must come from .env, not {value!r}"
            for userinfo in re.findall(r"://([^@/\s]+)@", value):
                password = userinfo.partition(":")[2]
                assert not password or VAR_RE.fullmatch(password), f"{where}: {key} has a literal password in a URL"

    for name, svc in services().items():
        check(svc.get("environment", {}), name)


def test_minio_image_builds_the_version_ensure_minio_builds():
    script = (REPO_ROOT / "scripts" / "ensure-minio.sh").read_text()
    dockerfile = (REPO_ROOT / "images" / "minio" / "Dockerfile").read_text()
    for name in ("MINIO_MODULE_VERSION", "MC_MODULE_VERSION"):
        pinned = re.search(rf'^{name}="([^"]+)"$', script, re.M)
        built = re.search(rf"^ARG {name}=(\S+)$", dockerfile, re.M)
        assert pinned and built, f"{name} not found in both files"
        assert built.group(1) == pinned.group(1), f"{name}: Dockerfile {built.group(1)} != ensure-minio.sh {pinned.group(1)}"
    assert 'go install -trimpath -ldflags "-s -w" "github.com/minio/minio@${MINIO_MODULE_VERSION}"' in dockerfile
    assert '"github.com/minio/mc@${MC_MODULE_VERSION}"' in dockerfile


# -- docker compose config -------------------------------------------------------------------

def compose_cli() -> list[str] | None:
    """`docker compose` (plugin) or a standalone `docker-compose` v2, if installed."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    for candidate in (shutil.which("docker-compose"), REPO_ROOT / ".tools" / "bin" / "docker-compose"):
        if candidate and Path(candidate).exists():
            return [str(candidate)]
    return None


@pytest.fixture
def compose_cmd() -> list[str]:
    """Never skipped: without a compose CLI, build one from source as `make test` does."""
    cmd = compose_cli()
    if cmd is None:
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "ensure-compose.sh")], check=True)
        cmd = compose_cli()
    assert cmd is not None, "scripts/ensure-compose.sh did not produce a docker-compose binary"
    return cmd


@pytest.mark.slow  # builds the Compose CLI from source the first time
def test_docker_compose_accepts_the_file_with_the_example_env(compose_cmd):
    # `config` resolves and validates the model without talking to a Docker engine.
    proc = subprocess.run([*compose_cmd, "--env-file", str(ENV_EXAMPLE), "config", "--format", "json"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads(proc.stdout)
    assert resolved["services"]["init-airflow"]["environment"]["AIRFLOW_ADMIN_PASSWORD"] == env_example()["AIRFLOW_ADMIN_PASSWORD"]


@pytest.mark.slow  # builds the Compose CLI from source the first time
def test_docker_compose_refuses_to_start_without_a_required_secret(compose_cmd, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env_example().items() if k != "POSTGRES_PASSWORD"))
    proc = subprocess.run([*compose_cmd, "--env-file", str(env_file), "config", "-q"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "POSTGRES_PASSWORD" in proc.stderr


# -- the init services' scripts, against the real servers ------------------------------------

def run_init_minio(minio_server, prefix: str, store_key: str, store_secret: str, lock_days: int = 0):
    env = {
        **minio_server.env(),
        "MC": str(minio_server.mc_binary),
        "MC_CONFIG_DIR": str(minio_server.data_dir.parent / f"mc-init-{prefix}"),
        "MINIO_URL": minio_server.url,
        "TRAINYARD_MINIO_ACCESS_KEY": store_key,
        "TRAINYARD_MINIO_SECRET_KEY": store_secret,
        "TRAINYARD_MINIO_BUCKET_PREFIX": prefix,
        "TRAINYARD_MINIO_OBJECT_LOCK_DAYS": str(lock_days),
    }
    return subprocess.run(["sh", str(REPO_ROOT / "images" / "minio" / "init-buckets.sh")],
                          env=env, capture_output=True, text=True)


@pytest.mark.minio
def test_init_minio_creates_versioned_buckets_and_a_store_user_confined_to_them(minio_server):
    prefix = "ty-compose-" + secrets.token_hex(4)
    store_key, store_secret = "ty-store-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    for _run in range(2):  # compose runs it on every `up`
        proc = run_init_minio(minio_server, prefix, store_key, store_secret)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for secret in (store_key, store_secret, minio_server.secret_key):
            assert secret not in proc.stdout + proc.stderr
    buckets = minio_server.mc("ls", "test/").stdout
    for area in ("datasets", "runs", "models"):
        assert f"{prefix}-{area}/" in buckets
    assert "versioning is enabled" in minio_server.mc("version", "info", f"test/{prefix}-models").stdout

    settings = StoreSettings(backend="minio", minio_endpoint=minio_server.endpoint, minio_access_key=store_key,
                             minio_secret_key=store_secret, bucket_prefix=prefix)
    store = MinioStore(settings)
    store.put_bytes("runs/r1/metrics.json", b"{}")
    store.put_bytes("models/m/versions/1/manifest.json", b'{"v": 1}', if_absent=True)
    assert store.get_bytes("models/m/versions/1/manifest.json") == b'{"v": 1}'
    store.delete("runs/r1/metrics.json")
    assert not store.exists("runs/r1/metrics.json")
    from steps.store.errors import StoreAuthError

    with pytest.raises(StoreAuthError):
        MinioStore(StoreSettings(**{**settings.__dict__, "bucket_prefix": "not-" + prefix})).put_bytes("runs/x", b"1")


@pytest.mark.minio
def test_init_minio_with_object_lock_makes_registered_versions_undeletable(minio_server):
    prefix = "ty-lock-" + secrets.token_hex(4)
    store_key, store_secret = "ty-store-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    proc = run_init_minio(minio_server, prefix, store_key, store_secret, lock_days=1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = MinioStore(StoreSettings(backend="minio", minio_endpoint=minio_server.endpoint, minio_access_key=store_key,
                                     minio_secret_key=store_secret, bucket_prefix=prefix, object_lock_days=1))
    store.put_bytes("models/m/versions/1/weights.bin", b"w", if_absent=True)
    from steps.store.errors import StoreAuthError

    with pytest.raises(StoreAuthError, match="retention"):
        store.delete("models/m/versions/1/weights.bin")


# init_airflow.py runs about ten `airflow` CLI commands and the test runs it twice, plus three
# more: each takes a minute or two when a 2-core machine is busy (seen: 900 s not enough).
INIT_AIRFLOW_TIMEOUT_S = 2700
AIRFLOW_CLI_TIMEOUT_S = 900


@pytest.mark.timeout(INIT_AIRFLOW_TIMEOUT_S)
@pytest.mark.e2e
def test_init_airflow_sets_the_admin_password_the_connections_and_the_team_pools():
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import airflow_stack  # scripts/ is not a package

    # Not pytest's tmp_path: its 0700 parents keep out the postgres user the cluster runs as.
    tmp_path = Path(tempfile.mkdtemp(prefix="trainyard-compose-init-"))
    os.chmod(tmp_path, 0o755)
    pg = airflow_stack.PostgresCluster(tmp_path / "pg")
    try:
        pg.start()
        example = env_example()
        example["TRAINYARD_MINIO_SECRET_KEY"] = store_secret = secrets.token_urlsafe(24)
        compose_env = {k: interpolate(str(v), example) for k, v in services()["init-airflow"]["environment"].items()}
        passwords_file = tmp_path / "auth" / "passwords.json"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRAINYARD_"))},
            **compose_env,
            # Container paths and hosts, mapped onto this machine.
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.sqlalchemy_url,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "TRAINYARD_HOME": str(tmp_path / "trainyard"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        script = REPO_ROOT / "images" / "airflow" / "init_airflow.py"
        for _run in range(2):  # compose runs it on every `up`
            proc = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=AIRFLOW_CLI_TIMEOUT_S)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            assert store_secret not in proc.stdout + proc.stderr
            assert example["AIRFLOW_ADMIN_PASSWORD"] not in proc.stdout + proc.stderr

        assert json.loads(passwords_file.read_text()) == {example["AIRFLOW_ADMIN_USER"]: example["AIRFLOW_ADMIN_PASSWORD"]}
        assert passwords_file.stat().st_mode & 0o077 == 0

        # What the operators' reader makes of the stored connection. Outside a task the SDK cannot
        # reach the metadata DB, so the connection goes to it as Airflow's own URI, via env.
        got = subprocess.run(["airflow", "connections", "get", MINIO_CONN_ID, "-o", "json"],
                             env=env, capture_output=True, text=True,
                              timeout=AIRFLOW_CLI_TIMEOUT_S)
        assert got.returncode == 0, got.stderr[-3000:]
        uri = json.loads(got.stdout)[0]["get_uri"]
        probe = (
            "import json; from operators.connections import store_settings_from_connection as read; "
            "from steps.store.settings import StoreSettings; "
            "s = read(StoreSettings(backend='minio')); "
            "print(json.dumps([s.minio_endpoint, s.minio_access_key, s.minio_secret_key, s.minio_secure]))"
        )
        probe_env = {k: v for k, v in env.items() if not k.startswith("TRAINYARD_MINIO_")}
        probe_env[f"AIRFLOW_CONN_{MINIO_CONN_ID.upper()}"] = uri
        proc = subprocess.run([sys.executable, "-c", probe], env=probe_env, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=AIRFLOW_CLI_TIMEOUT_S)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
            "minio:9000", example["TRAINYARD_MINIO_ACCESS_KEY"], store_secret, False]

        pools = subprocess.run(["airflow", "pools", "list", "-o", "json"], env=env, capture_output=True, text=True,
                              timeout=AIRFLOW_CLI_TIMEOUT_S)
        assert pools.returncode == 0, pools.stderr[-3000:]
        slots = {p["pool"]: int(p["slots"]) for p in json.loads(pools.stdout)}
        for team in load_teams().teams.values():
            assert slots.get(team.pool) == team.pool_slots
        kube = subprocess.run(["airflow", "connections", "get", kubernetes_conn_id_of_train_operator(), "-o", "json"],
                              env=env, capture_output=True, text=True,
                              timeout=AIRFLOW_CLI_TIMEOUT_S)
        assert kube.returncode == 0 and '"conn_type": "kubernetes"' in kube.stdout.replace("'", '"')
    finally:
        pg.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)
