"""The client's refusals that need no Airflow: a bad request is refused on this machine before any
network (and without importing Airflow or the REST client), and the wrong URL, an Airflow that is
down and missing credentials each get one line and their own exit code. The errors that need a
real Airflow (bad credentials, a paused or missing DAG, an unknown run) are in tests/e2e/test_client.py."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import PROJECT_ROOT
from trainyard.cli import main
from trainyard.client.errors import (
    EXIT_AIRFLOW_DOWN,
    EXIT_BAD_CREDENTIALS,
    EXIT_BAD_REQUEST,
    EXIT_WRONG_URL,
)

# Runs the CLI in a fresh interpreter and reports what it imported: the refusal path must not
# pay for (or depend on) Airflow or the REST client.
_PROBE = """
import contextlib, io, json, sys
from trainyard.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "stderr": err.getvalue(),
                  "imported": sorted(m for m in ("airflow", "airflow_client") if m in sys.modules)}))
"""


def _probe(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def credentials(monkeypatch) -> None:
    monkeypatch.setenv("TRAINYARD_AIRFLOW_USERNAME", "someone")
    monkeypatch.setenv("TRAINYARD_AIRFLOW_PASSWORD", "not-a-real-password")
    monkeypatch.delenv("TRAINYARD_AIRFLOW_URL", raising=False)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_submit_refuses_an_out_of_bounds_parameter_in_the_forms_words_before_any_network():
    # The URL points nowhere: the refusal must come first, from the local check.
    result = _probe("submit", "--dataset", "digits", "--algorithm", "digits-cnn", "--epochs", "500",
                    "--airflow", "http://127.0.0.1:9")
    assert result["code"] == EXIT_BAD_REQUEST
    assert result["stderr"].strip() == (
        "trainyard: error: invalid run parameters: epochs: Input should be less than or equal to 200"
    )
    assert result["imported"] == []


def test_submit_refuses_an_unknown_dataset_and_a_mismatched_algorithm_without_airflow():
    unknown = _probe("submit", "--dataset", "digitz", "--algorithm", "digits-cnn", "--airflow", "http://127.0.0.1:9")
    assert unknown["code"] == EXIT_BAD_REQUEST
    assert unknown["stderr"].strip() == ("trainyard: error: dataset 'digitz' is not in the catalog (did you mean 'digits'?); "
                                         "known: digits, intents")
    assert unknown["imported"] == []
    mismatch = _probe("submit", "--dataset", "intents", "--algorithm", "digits-cnn", "--airflow", "http://127.0.0.1:9")
    assert mismatch["code"] == EXIT_BAD_REQUEST
    assert "trains on 'digits' data, but dataset 'intents' has schema 'intent'" in mismatch["stderr"]


def test_a_url_that_is_not_http_is_refused_as_a_wrong_url(capsys, credentials):
    assert main(["status", "some-run", "--airflow", "localhost:8080"]) == EXIT_WRONG_URL
    assert "is not an http(s) URL of an Airflow api-server" in _one_line_error(capsys)


def test_no_url_at_all_says_where_to_give_one(capsys, credentials):
    assert main(["runs"]) == EXIT_WRONG_URL
    assert "pass --airflow URL or set TRAINYARD_AIRFLOW_URL" in _one_line_error(capsys)


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port held by a socket that never listens: connecting is refused, and nobody else can take it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_nothing_answering_at_the_url_is_reported_as_airflow_down(capsys, credentials, refusing_port):
    assert main(["status", "some-run", "--airflow", f"http://127.0.0.1:{refusing_port}"]) == EXIT_AIRFLOW_DOWN
    assert "(connection refused): is Airflow's api-server running?" in _one_line_error(capsys)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def other_web_server(tmp_path) -> Iterator[str]:
    """A real HTTP server that is not Airflow (Python's file server), on a port it picked itself."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _QuietHandler(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_web_server_that_is_not_airflow_is_reported_as_a_wrong_url(capsys, credentials, other_web_server):
    assert main(["runs", "--airflow", other_web_server]) == EXIT_WRONG_URL
    assert "not an Airflow 3 api-server" in _one_line_error(capsys)


def test_missing_credentials_outside_a_terminal_name_the_variables_to_set(capsys, monkeypatch, other_web_server):
    monkeypatch.delenv("TRAINYARD_AIRFLOW_USERNAME", raising=False)
    monkeypatch.delenv("TRAINYARD_AIRFLOW_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", None)  # no terminal to prompt in
    assert main(["runs", "--airflow", other_web_server]) == EXIT_BAD_CREDENTIALS
    assert "set TRAINYARD_AIRFLOW_USERNAME and TRAINYARD_AIRFLOW_PASSWORD" in _one_line_error(capsys)
