"""Where the client finds Airflow and who it logs in as: the environment, or a prompt in a terminal.
Never the command line (it would land in shell history and `ps`), and the password is never printed."""
from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from trainyard.client.errors import BadCredentials, WrongUrl

ENV_URL = "TRAINYARD_AIRFLOW_URL"
ENV_USERNAME = "TRAINYARD_AIRFLOW_USERNAME"
ENV_PASSWORD = "TRAINYARD_AIRFLOW_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def airflow_url(url: str | None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    chosen = url or env.get(ENV_URL, "")
    if not chosen.strip():
        raise WrongUrl(f"no Airflow URL: pass --airflow URL or set {ENV_URL} (e.g. http://127.0.0.1:8080)")
    return chosen.strip()


def find_credentials(
    env: Mapping[str, str] | None = None, *, username: str | None = None, password: str | None = None
) -> Credentials:
    """Explicit values (the Python API), then the environment, then a prompt when stdin is a terminal."""
    env = os.environ if env is None else env
    user = username or env.get(ENV_USERNAME, "")
    secret = password or env.get(ENV_PASSWORD, "")
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if not user and interactive:
        user = input("Airflow username: ").strip()
    if user and not secret and interactive:
        secret = getpass.getpass(f"Airflow password for {user}: ")
    if not user or not secret:
        raise BadCredentials(
            f"no Airflow credentials: set {ENV_USERNAME} and {ENV_PASSWORD} (or run in a terminal to be asked)"
        )
    return Credentials(user, secret)
