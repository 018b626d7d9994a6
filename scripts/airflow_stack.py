"""A throwaway local Airflow 3 (api-server, scheduler, dag-processor, triggerer;
LocalExecutor) on a throwaway PostgreSQL cluster, for the e2e tests and `make up`.

Everything lives in one temp dir and on random loopback ports, so several stacks can
coexist and nothing touches a system PostgreSQL or ~/airflow.

    python scripts/airflow_stack.py up            # foreground; prints URL + login; Ctrl-C stops
    python scripts/airflow_stack.py install-deps  # apt packages the stack and the UI test need
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
PG_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
CHROMIUM_PATH = Path("/usr/bin/chromium")
# Debian packages: the PostgreSQL server binaries, and the browser for the UI test.
APT_PACKAGES = ("postgresql-15", "chromium", "fonts-liberation")
# PostgreSQL refuses to run as root; on a root box we hand the cluster to this user.
PG_SYSTEM_USER = "postgres"
AIRFLOW_COMPONENTS = ("scheduler", "dag-processor", "triggerer")


class StackError(RuntimeError):
    """The stack could not start; the message names the component and its log file."""


PORT_ATTEMPTS = 4
MIGRATE_TIMEOUT_S = 1200


def free_port() -> int:
    """A port free right now. Someone may take it before our server binds it, so every user
    retries with another port when its server reports the address in use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def install_deps() -> None:
    """Install the Debian packages the stack needs (idempotent; needs root)."""
    missing = []
    if not (PG_BIN_DIR / "initdb").exists():
        missing.append("postgresql-15")
    if not CHROMIUM_PATH.exists():
        # Without a font package headless chromium renders text as boxes in screenshots.
        missing.extend(["chromium", "fonts-liberation"])
    if not missing:
        print("airflow_stack: apt packages already present:", " ".join(APT_PACKAGES))
        return
    if os.geteuid() != 0:
        raise StackError(f"need root to apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )


class PostgresCluster:
    """A private PostgreSQL 15 cluster: initdb into a temp dir, loopback only, trust auth."""

    def __init__(self, root: Path, db_name: str = "airflow", db_user: str = "airflow") -> None:
        self.root = root
        self.data_dir = root / "data"
        self.socket_dir = root / "run"
        self.log_file = root / "postgres.log"
        self.db_name = db_name
        self.db_user = db_user
        self.port = 0
        self._run_as: str | None = None

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://{self.db_user}@127.0.0.1:{self.port}/{self.db_name}"

    def _cmd(self, argv: Sequence[str]) -> list[str]:
        if self._run_as:
            return ["runuser", "-u", self._run_as, "--", *argv]
        return list(argv)

    def _run(self, argv: Sequence[str]) -> None:
        proc = subprocess.run(self._cmd(argv), capture_output=True, text=True)
        if proc.returncode != 0:
            raise StackError(
                f"postgres: {' '.join(argv[:1])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                f"log {self.log_file}:\n{_tail(self.log_file)}"
            )

    def start(self) -> None:
        if not (PG_BIN_DIR / "initdb").exists():
            raise StackError(
                f"{PG_BIN_DIR}/initdb not found: apt-get install postgresql-15 "
                "(or: python scripts/airflow_stack.py install-deps)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam(PG_SYSTEM_USER)
            except KeyError as exc:
                raise StackError(
                    f"running as root and there is no '{PG_SYSTEM_USER}' user to own the cluster"
                ) from exc
            self._run_as = PG_SYSTEM_USER
            for path in (self.root, self.socket_dir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        self._run(
            [
                str(PG_BIN_DIR / "initdb"),
                "--pgdata", str(self.data_dir),
                "--username", self.db_user,
                "--auth", "trust",
                "--encoding", "UTF8",
                "--no-sync",
            ]
        )
        # Durability is worthless for a throwaway cluster; skipping fsync makes
        # `airflow db migrate` and the scheduler loop noticeably faster on a small box.
        options = (
            f"-c listen_addresses=127.0.0.1 -c unix_socket_directories={self.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        for _attempt in range(3):
            self.port = free_port()
            try:
                self._run(
                    [
                        str(PG_BIN_DIR / "pg_ctl"), "--pgdata", str(self.data_dir),
                        "--log", str(self.log_file), "--options", f"-p {self.port} {options}",
                        "--wait", "--timeout", "300", "start",
                    ]
                )
                break
            except StackError:
                if "could not bind" not in _tail(self.log_file):
                    raise
        self._run(
            [
                str(PG_BIN_DIR / "createdb"), "--host", "127.0.0.1", "--port", str(self.port),
                "--username", self.db_user, self.db_name,
            ]
        )

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        subprocess.run(
            self._cmd([str(PG_BIN_DIR / "pg_ctl"), "--pgdata", str(self.data_dir), "--mode", "fast", "--wait", "stop"]),
            capture_output=True,
        )


@dataclass
class AirflowStack:
    """Postgres + the four Airflow 3 components, configured through one AIRFLOW_HOME.

    `bundles` maps a DAG bundle name to a folder; each becomes a LocalDagBundle, so
    several DAG folders (the project's dags/, a test's own) can be served side by side.
    """

    bundles: Mapping[str, Path]
    workdir: Path | None = None
    admin_user: str = "admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    parallelism: int = 4
    api_port: int = 0
    keep_workdir: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)
    postgres: PostgresCluster | None = field(default=None, init=False, repr=False)
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, init=False, repr=False)
    _owns_workdir: bool = field(default=False, init=False, repr=False)

    # -- paths ---------------------------------------------------------------
    @property
    def airflow_home(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "airflow_home"

    @property
    def log_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "logs"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # -- lifecycle -----------------------------------------------------------
    def start(self, timeout_s: float = 240.0) -> AirflowStack:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="trainyard-airflow-"))
            self._owns_workdir = True
        # The postgres system user must be able to traverse into its cluster dir.
        os.chmod(self.workdir, 0o755)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.postgres = PostgresCluster(self.workdir / "pg")
        pick_api_port = not self.api_port
        try:
            self.postgres.start()
            for attempt in range(1, PORT_ATTEMPTS + 1):
                if pick_api_port:
                    self.api_port = free_port()
                self._write_config()  # also picks fresh log-server ports
                if attempt == 1:
                    self._migrate()
                    self._create_team_pools()
                self._spawn("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"])
                for component in AIRFLOW_COMPONENTS:
                    self._spawn(component, [component])
                try:
                    self.wait_healthy(timeout_s=timeout_s)
                    break
                except StackError:
                    # Another process took a port between free_port() and our bind: try new ones.
                    if not (pick_api_port and attempt < PORT_ATTEMPTS and self._lost_a_port()):
                        raise
                    self._stop_components()
        except BaseException:
            self.stop()
            raise
        return self

    def _lost_a_port(self) -> bool:
        return any("address already in use" in _tail(self.log_dir / f"{name}.log", 200).lower() for name in self._procs)

    def stop(self) -> None:
        self._stop_components()
        if self.postgres is not None:
            self.postgres.stop()
        if self._owns_workdir and not self.keep_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_components(self) -> None:
        # SIGTERM lets the scheduler hand back its LocalExecutor workers cleanly;
        # whole process groups so no task subprocess outlives the stack.
        for proc in self._procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
            # Sweep stragglers of a group whose leader already exited (task supervisors).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._procs.clear()

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment for any `airflow` command against this stack."""
        # Inherited AIRFLOW__* settings from the caller's shell would silently override
        # the stack's airflow.cfg, so they are dropped.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        env.pop("AIRFLOW_CONFIG", None)
        env["AIRFLOW_HOME"] = str(self.airflow_home)
        env["AIRFLOW_CONFIG"] = str(self.airflow_home / "airflow.cfg")
        # DAGs import the project's own packages (steps/, operators/).
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def _write_config(self) -> None:
        home = self.airflow_home
        home.mkdir(parents=True, exist_ok=True)
        passwords_file = home / "simple_auth_manager_passwords.json"
        # SimpleAuthManager only generates a password for users missing from this file,
        # so writing it first gives a login we know.
        passwords_file.write_text(json.dumps({self.admin_user: self.admin_password}) + "\n")
        passwords_file.chmod(0o600)
        bundle_list = [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(Path(path).resolve()), "refresh_interval": 10},
            }
            for name, path in self.bundles.items()
        ]
        first_folder = str(Path(next(iter(self.bundles.values()))).resolve())
        from cryptography.fernet import Fernet  # airflow dependency; a real key avoids plaintext-conn warnings

        cfg = f"""\
[core]
executor = LocalExecutor
# Importing a DAG file (pendulum, the project's packages) can take tens of seconds under load.
dagbag_import_timeout = 240
parallelism = {self.parallelism}
load_examples = False
dags_folder = {first_folder}
dags_are_paused_at_creation = True
fernet_key = {Fernet.generate_key().decode()}
auth_manager = airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
simple_auth_manager_users = {self.admin_user}:admin
simple_auth_manager_passwords_file = {passwords_file}
execution_api_server_url = {self.base_url}/execution/

[database]
sql_alchemy_conn = {self.postgres.sqlalchemy_url}

[api]
host = 127.0.0.1
port = {self.api_port}
base_url = {self.base_url}
workers = 1
secret_key = {secrets.token_hex(32)}

[api_auth]
jwt_secret = {secrets.token_hex(32)}

[logging]
# The scheduler and triggerer serve task logs on fixed ports by default; random ones
# let two stacks (or a dev's `make up` and CI) run side by side.
worker_log_server_port = {free_port()}
trigger_log_server_port = {free_port()}
base_log_folder = {self.log_dir / "tasks"}
dag_processor_child_process_log_directory = {self.log_dir / "dag_processor"}

[scheduler]
# Parse/schedule promptly: the tests wait on these loops.
scheduler_heartbeat_sec = 2

[workers]
# A task's supervisor talks to the api-server's execution API; Airflow's 5 s default fails
# tasks before they start when a shared 2-core machine is busy (seen: "finished with state
# failed, but the task instance's state attribute is queued").
execution_api_timeout = 60
execution_api_retries = 10

[dag_processor]
refresh_interval = 10
dag_file_processor_timeout = 300
min_file_process_interval = 60
parsing_processes = 1
dag_bundle_config_list = {json.dumps(bundle_list)}
"""
        (home / "airflow.cfg").write_text(cfg)
        (home / "airflow.cfg").chmod(0o600)

    def _migrate(self) -> None:
        log = self.log_dir / "db-migrate.log"
        with log.open("w") as out:
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "airflow", "db", "migrate"],
                    env=self.env(), stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, timeout=MIGRATE_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired:
                raise StackError(f"airflow db migrate did not finish in {MIGRATE_TIMEOUT_S}s; log {log}:\n{_tail(log)}") from None
        if proc.returncode != 0:
            raise StackError(f"airflow db migrate failed ({proc.returncode}); log {log}:\n{_tail(log)}")

    def _create_team_pools(self) -> None:
        """The pools config/teams.yaml names (as images/airflow/init_airflow.py makes them for Compose):
        a study's trial tasks run in their team's pool, and a task in a missing pool never runs."""
        from steps.catalog.teams import load_teams

        pools = {
            team.pool: {"slots": team.pool_slots, "description": f"Trainyard team {team.name}", "include_deferred": False}
            for team in load_teams().teams.values()
        }
        pools_file = self.airflow_home / "team-pools.json"
        pools_file.write_text(json.dumps(pools))
        log = self.log_dir / "pools-import.log"
        with log.open("w") as out:
            proc = subprocess.run(
                [sys.executable, "-m", "airflow", "pools", "import", str(pools_file)],
                env=self.env(), stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
            )
        if proc.returncode != 0:
            raise StackError(f"airflow pools import failed ({proc.returncode}); log {log}:\n{_tail(log)}")

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("w")
        self._procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            start_new_session=True,
        )
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                log = self.log_dir / f"{name}.log"
                raise StackError(f"airflow {name} exited with {proc.returncode}; log {log}:\n{_tail(log)}")

    def health(self) -> dict:
        resp = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        resp.raise_for_status()
        return resp.json()

    def wait_healthy(self, timeout_s: float = 240.0) -> None:
        """Wait until the api-server answers and reports every component healthy."""
        deadline = time.monotonic() + timeout_s
        last: object = "no answer yet"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = self.health()
                unhealthy = [
                    part for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                    if (health.get(part) or {}).get("status") != "healthy"
                ]
                if not unhealthy:
                    return
                last = f"unhealthy: {unhealthy}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(1)
        raise StackError(f"Airflow not healthy after {timeout_s:.0f}s ({last}); logs in {self.log_dir}")


def _cmd_up(args: argparse.Namespace) -> int:
    bundles = {"dags-folder": Path(args.dags_folder)}
    for extra in args.extra_dags or []:
        bundles[Path(extra).name] = Path(extra)
    stack = AirflowStack(
        bundles=bundles,
        admin_user=args.user,
        admin_password=args.password or secrets.token_urlsafe(12),
        api_port=args.port,
        workdir=Path(args.workdir) if args.workdir else None,
    )
    started_s = time.monotonic()
    print("airflow_stack: starting PostgreSQL and Airflow (api-server, scheduler, dag-processor, triggerer)...", flush=True)
    stack.start()
    print(
        f"\nAirflow is up in {time.monotonic() - started_s:.0f}s\n"
        f"  URL:      {stack.base_url}\n"
        f"  login:    {stack.admin_user} / {stack.admin_password}\n"
        f"  DAGs:     {', '.join(str(p) for p in bundles.values())}\n"
        f"  logs:     {stack.log_dir}\n"
        f"  CLI env:  AIRFLOW_HOME={stack.airflow_home} AIRFLOW_CONFIG={stack.airflow_home / 'airflow.cfg'}\n"
        "Ctrl-C to stop.",
        flush=True,
    )
    stop = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    # Explicit handlers: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        while not stop:
            stack._check_alive()
            time.sleep(1)
    finally:
        print("\nairflow_stack: stopping...", flush=True)
        stack.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack in the foreground; Ctrl-C stops it")
    up.add_argument("--dags-folder", default=str(REPO_ROOT / "dags"))
    up.add_argument("--extra-dags", action="append", help="another folder served as its own DAG bundle")
    up.add_argument("--port", type=int, default=0, help="api-server port (default: a free one)")
    up.add_argument("--user", default="admin")
    up.add_argument("--password", default=os.environ.get("TRAINYARD_AIRFLOW_PASSWORD"),
                    help="admin password (default: $TRAINYARD_AIRFLOW_PASSWORD or a random one)")
    up.add_argument("--workdir", help="keep state here instead of a temp dir")
    sub.add_parser("install-deps", help=f"apt-get install {' '.join(APT_PACKAGES)} if missing")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return _cmd_up(args)
        install_deps()
        return 0
    except StackError as exc:
        print(f"airflow_stack: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
