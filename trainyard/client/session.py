"""A logged-in session with Airflow's REST API v2, through the official apache-airflow-client.

Airflow 3's JWT flow: POST <url>/auth/token with username and password returns an access token,
which the generated client sends as a Bearer header. Every call goes through `call`, which turns
transport failures and HTTP errors into the client's one-line errors and logs in again once when
a long watch outlives its token.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import urllib3
from airflow_client.client import ApiClient, Configuration
from airflow_client.client.api.backfill_api import BackfillApi
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.x_com_api import XComApi
from airflow_client.client.exceptions import (
    ApiException,
    ForbiddenException,
    NotFoundException,
    ServiceException,
    UnauthorizedException,
)

from trainyard.client.credentials import Credentials
from trainyard.client.errors import (
    AirflowDown,
    BadCredentials,
    ClientError,
    DagMissing,
    DagPaused,
    RequestRefused,
    WrongUrl,
)

T = TypeVar("T")
DEFAULT_REQUEST_TIMEOUT_S = 30.0
_REFUSED_STATUSES = (400, 409, 422)
# Airflow answers 403 with this for a token it cannot verify (its api-server restarted with a new
# JWT secret, as `make up` does); a new login fixes that, as it does an expired token's 401.
_INVALID_TOKEN = "Invalid JWT token"


class NotFound(ClientError):
    """HTTP 404; callers say what was not found (a DAG, a run, a log)."""


class TokenRejected(BadCredentials):
    """The token expired (401) or cannot be verified any more (403); one new login is tried."""


def normalize_url(url: str) -> str:
    """The api-server's base URL; a pasted .../api/v2 or trailing slash is forgiven."""
    text = url.strip().rstrip("/")
    if text.endswith("/api/v2"):
        text = text[: -len("/api/v2")]
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WrongUrl(f"{url!r} is not an http(s) URL of an Airflow api-server (e.g. http://127.0.0.1:8080)")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise WrongUrl(f"{url!r} has an invalid port") from None
    return text


def airflow_detail(exc: ApiException) -> str:
    """Airflow's own one-line explanation from an error response ({"detail": ...})."""
    try:
        detail = json.loads(exc.body or "")["detail"]
    except (ValueError, KeyError, TypeError):
        text = (exc.body or exc.reason or "").strip()
        return text.splitlines()[0][:300] if text else ""
    if isinstance(detail, list):  # FastAPI validation errors: [{"loc": [...], "msg": ...}, ...]
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail)
    return " ".join(str(detail).split("\n\n")[0].split())


class AirflowSession:
    def __init__(self, url: str, credentials: Credentials, *, request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S):
        self.url = normalize_url(url)
        self.username = credentials.username
        self._credentials = credentials
        self.request_timeout_s = request_timeout_s
        self._config = Configuration(host=self.url)
        self._client = ApiClient(self._config)
        self.dags = DAGApi(self._client)
        self.dag_runs = DagRunApi(self._client)
        self.task_instances = TaskInstanceApi(self._client)
        self.xcoms = XComApi(self._client)
        self.backfills = BackfillApi(self._client)
        self.login()

    # -- the JWT flow ------------------------------------------------------
    def login(self) -> None:
        """POST /auth/token; the generated client has no call for it, so its own transport sends it."""
        method, url, headers, body, _ = self._client.param_serialize(
            method="POST",
            resource_path="/auth/token",
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            # Sent as the request body only; never logged or put in an error message.
            body={"username": self._credentials.username, "password": self._credentials.password},
        )
        response = self._transport(lambda: self._client.call_api(
            method, url, header_params=headers, body=body, _request_timeout=self.request_timeout_s
        ))
        data = response.read()
        if response.status in (401, 403):
            raise BadCredentials(f"Airflow at {self.url} refused the login of user {self.username!r} (wrong username or password)")
        if response.status in (404, 405, 501):  # no such route, or no POST: some other web server
            raise WrongUrl(f"{self.url} answered HTTP {response.status} to POST /auth/token: not an Airflow 3 api-server")
        if 500 <= response.status <= 599:
            raise AirflowDown(f"Airflow at {self.url} answered HTTP {response.status} to the login: it is not working")
        try:
            token = json.loads(data)["access_token"]
        except (ValueError, KeyError, TypeError):
            raise WrongUrl(
                f"{self.url} answered the login with HTTP {response.status} but no access token: not an Airflow 3 api-server"
            ) from None
        self._config.access_token = token

    # -- calls -------------------------------------------------------------
    def call(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One generated-client call, with the session's timeout and its errors in the user's words."""
        kwargs.setdefault("_request_timeout", self.request_timeout_s)
        return self._logged_in(lambda: operation(*args, **kwargs))

    def call_json(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A generated `..._without_preload_content` call, answered as Airflow's raw JSON. For the calls
        whose generated models drop fields Airflow sends: a structured log entry keeps only its event
        and timestamp, losing its level and the exception it logged."""
        kwargs.setdefault("_request_timeout", self.request_timeout_s)

        def send() -> Any:
            response = operation(*args, **kwargs)
            body = response.data.decode("utf-8", "replace")
            if not 200 <= response.status <= 299:
                raise ApiException.from_response(http_resp=response, body=body, data=None)
            return json.loads(body)

        return self._logged_in(send)

    def _logged_in(self, send: Callable[[], T]) -> T:
        try:
            return self._api_errors(lambda: self._transport(send))
        except TokenRejected:
            self.login()  # a watch can outlive its token: log in again, once
            return self._api_errors(lambda: self._transport(send))

    def _api_errors(self, send: Callable[[], T]) -> T:
        try:
            return send()
        except UnauthorizedException:  # Airflow's "Token Expired"
            raise TokenRejected(f"Airflow at {self.url} no longer accepts the login of {self.username!r}") from None
        except ForbiddenException as exc:
            detail = airflow_detail(exc)
            if detail == _INVALID_TOKEN:
                raise TokenRejected(f"Airflow at {self.url} no longer accepts the login of {self.username!r}") from None
            raise BadCredentials(f"user {self.username!r} may not do this on {self.url}: {detail}") from None
        except NotFoundException as exc:
            raise NotFound(airflow_detail(exc)) from None
        except ServiceException as exc:
            raise AirflowDown(f"Airflow at {self.url} answered HTTP {exc.status}: {airflow_detail(exc)}") from None
        except ApiException as exc:
            if exc.status in _REFUSED_STATUSES:
                raise RequestRefused(f"Airflow refused the request: {airflow_detail(exc)}") from None
            if exc.status == 0:  # the generated client's wrapping of a TLS failure
                raise WrongUrl(f"TLS with {self.url} failed: {' '.join((exc.reason or '').split())}") from None
            raise ClientError(f"Airflow at {self.url} answered HTTP {exc.status}: {airflow_detail(exc)}") from None

    def _transport(self, send: Callable[[], T]) -> T:
        try:
            return send()
        except urllib3.exceptions.MaxRetryError as exc:
            raise self._unreachable(exc.reason) from None
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, reason: BaseException | None) -> ClientError:
        host = urlsplit(self.url).netloc
        if isinstance(reason, urllib3.exceptions.NameResolutionError):
            return WrongUrl(f"cannot resolve the host of {self.url} ({host}): check the URL")
        if isinstance(reason, urllib3.exceptions.SSLError):
            return WrongUrl(f"TLS with {self.url} failed: check http:// versus https://")
        if isinstance(reason, urllib3.exceptions.NewConnectionError):  # before ConnectTimeoutError, its base
            return AirflowDown(f"nothing answers at {self.url} (connection refused): is Airflow's api-server running?")
        if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
            return AirflowDown(f"Airflow at {self.url} did not answer within {self.request_timeout_s:.0f}s")
        if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
            return AirflowDown(f"Airflow at {self.url} stopped answering (no reply within {self.request_timeout_s:.0f}s)")
        if isinstance(reason, urllib3.exceptions.ProtocolError):
            return WrongUrl(f"{self.url} does not speak HTTP like an Airflow api-server ({type(reason).__name__})")
        return AirflowDown(f"cannot reach Airflow at {self.url}: {type(reason).__name__ if reason else 'unknown error'}")

    # -- what most verbs need first ----------------------------------------
    def require_dag(self, dag_id: str, *, unpaused: bool = False, unpause: bool = False) -> Any:
        """The DAG, refused in one line when it is missing or (for verbs that start runs) paused."""
        try:
            dag = self.call(self.dags.get_dag, dag_id)
        except NotFound:
            raise DagMissing(f"DAG {dag_id!r} does not exist on {self.url} (not parsed yet, or a typo)") from None
        if dag.is_paused and unpause:
            dag = self.call(self.dags.patch_dag, dag_id, _dag_patch_body(is_paused=False))
        elif dag.is_paused and unpaused:
            raise DagPaused(
                f"DAG {dag_id!r} is paused on {self.url}: its runs would wait forever; unpause it in the UI or pass --unpause"
            )
        return dag

    def run_url(self, dag_id: str, run_id: str) -> str:
        """The run's page in Airflow 3's UI."""
        return f"{self.url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _dag_patch_body(**fields: Any) -> Any:
    from airflow_client.client.models.dag_patch_body import DAGPatchBody

    return DAGPatchBody(**fields)
