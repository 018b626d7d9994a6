#!/opt/venv/bin/python
"""One-shot setup of the compose stack's Airflow, safe to run on every `up`: migrate the
metadata database, give the admin user its password, create the connections and team pools.

Env (docker-compose.yml's init-airflow service):
  AIRFLOW_ADMIN_USER, AIRFLOW_ADMIN_PASSWORD
  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE   where the api-server reads passwords
  TRAINYARD_MINIO_CONN_ID, TRAINYARD_KUBERNETES_CONN_ID  connection ids the operators use
  TRAINYARD_MINIO_ENDPOINT, TRAINYARD_MINIO_SECURE, TRAINYARD_MINIO_ACCESS_KEY, TRAINYARD_MINIO_SECRET_KEY
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from steps.catalog.teams import load_teams


def required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"init-airflow: {name} is not set (see .env.example)")
    return value


def airflow(*args: str) -> None:
    subprocess.run(["airflow", *args], check=True)


def write_admin_password(passwords_file: Path, user: str, password: str) -> None:
    # Airflow 3's SimpleAuthManager has no user table: users and roles come from
    # AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS, their passwords from this file. A password
    # written here first is the one the api-server uses (it generates only missing ones).
    passwords_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(passwords_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({user: password}, out)


def connections() -> dict[str, dict]:
    host, _, port = required("TRAINYARD_MINIO_ENDPOINT").rpartition(":")
    return {
        # operators/connections.py reads host, port, login, password and extra.secure.
        required("TRAINYARD_MINIO_CONN_ID"): {
            "conn_type": "generic",
            "description": "Trainyard artifact store (MinIO); created by the compose init-airflow service",
            "host": host,
            "port": int(port),
            "login": required("TRAINYARD_MINIO_ACCESS_KEY"),
            "password": required("TRAINYARD_MINIO_SECRET_KEY"),
            "extra": json.dumps({"secure": os.environ.get("TRAINYARD_MINIO_SECURE", "false").lower() == "true"}),
        },
        required("TRAINYARD_KUBERNETES_CONN_ID"): {
            "conn_type": "kubernetes",
            "description": "Cluster for the kubernetes executor; created by the compose init-airflow service",
            # Out of cluster: the provider then reads ~/.kube/config (edit the connection to point elsewhere).
            "extra": json.dumps({"in_cluster": False}),
        },
    }


def import_connections(conns: dict[str, dict]) -> None:
    # Through a 0600 temp file, not `connections add --conn-password`: argv is visible in `ps`.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "connections.json"
        path.write_text(json.dumps(conns))
        path.chmod(0o600)
        airflow("connections", "import", "--overwrite", str(path))


def main() -> None:
    user, password = required("AIRFLOW_ADMIN_USER"), required("AIRFLOW_ADMIN_PASSWORD")
    passwords_file = Path(required("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"))
    conns = connections()  # fail on missing settings before touching the database
    airflow("db", "migrate")
    write_admin_password(passwords_file, user, password)
    print(f"init-airflow: admin user {user!r} has the password from AIRFLOW_ADMIN_PASSWORD", flush=True)
    import_connections(conns)
    print(f"init-airflow: connections {', '.join(sorted(conns))} are set", flush=True)
    # The kubernetes train operator and every study's trials run in their team's pool; a pool
    # that does not exist would leave their tasks queued forever.
    for team in load_teams().teams.values():
        airflow("pools", "set", team.pool, str(team.pool_slots), f"Trainyard team {team.name}: concurrent training runs")
    print("init-airflow: done", flush=True)


if __name__ == "__main__":
    main()
