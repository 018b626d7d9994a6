"""A client for a running Trainyard: submit, watch and steer training runs through Airflow's REST
API v2 (the official apache-airflow-client), from a laptop or a notebook.

    import trainyard.client
    client = trainyard.client.connect("http://127.0.0.1:8080")   # or $TRAINYARD_AIRFLOW_URL
    run = client.submit(dataset="digits", algorithm="digits-cnn", epochs=2)
    final = list(client.watch(run.run_id))[-1]
    print(final.state, final.outcome.summary if final.outcome else "")

Credentials come from TRAINYARD_AIRFLOW_USERNAME / TRAINYARD_AIRFLOW_PASSWORD or a prompt. The REST
client is imported only by `connect`, so checking a request (trainyard.client.submit) stays fast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from trainyard.client.errors import (
    AirflowDown,
    BadCredentials,
    ClientError,
    DagMissing,
    DagPaused,
    RequestRefused,
    UnknownRun,
    WrongUrl,
)

if TYPE_CHECKING:
    from trainyard.client.trainyard_client import TrainyardClient

__all__ = [
    "AirflowDown",
    "BadCredentials",
    "ClientError",
    "DagMissing",
    "DagPaused",
    "RequestRefused",
    "UnknownRun",
    "WrongUrl",
    "connect",
]


def connect(
    url: str | None = None, *, username: str | None = None, password: str | None = None,
    request_timeout_s: float = 30.0,
) -> TrainyardClient:
    """Log in to the Airflow at `url` (default $TRAINYARD_AIRFLOW_URL) and return the client."""
    from trainyard.client.credentials import airflow_url, find_credentials
    from trainyard.client.session import AirflowSession, normalize_url
    from trainyard.client.trainyard_client import TrainyardClient

    base_url = normalize_url(airflow_url(url))  # a malformed URL is refused before anyone is asked to log in
    session = AirflowSession(base_url, find_credentials(username=username, password=password),
                             request_timeout_s=request_timeout_s)
    return TrainyardClient(session)
