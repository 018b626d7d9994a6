"""What goes wrong talking to a running Trainyard. Each error's message is one line in the user's
words, and its exit code is the `trainyard` command's, so a script can tell the cases apart."""
from __future__ import annotations

# Exit codes of the client commands (README "Train from anywhere" lists them).
EXIT_RUN_FAILED = 1  # the run (or a backfill date) ended failed
EXIT_BAD_REQUEST = 2  # a parameter out of bounds, an unknown name: refused before or by Airflow
EXIT_WEIGHTS_MISMATCH = 3  # an exact replay did not reproduce its weights (as `trainyard reproduce`)
EXIT_UNKNOWN_RUN = 4
EXIT_DAG_MISSING = 5
EXIT_DAG_PAUSED = 6
EXIT_BAD_CREDENTIALS = 7
EXIT_AIRFLOW_DOWN = 8
EXIT_WRONG_URL = 9
EXIT_API_ERROR = 10  # Airflow answered something the client did not expect
EXIT_INTERRUPTED = 130  # Ctrl-C while watching; the run itself goes on


class ClientError(RuntimeError):
    """Base of the client's errors; `exit_code` is what the CLI exits with."""

    exit_code = EXIT_API_ERROR


class RequestRefused(ClientError):
    """Airflow refused a request as invalid (HTTP 400/409/422), in its own words."""

    exit_code = EXIT_BAD_REQUEST


class UnknownRun(ClientError):
    exit_code = EXIT_UNKNOWN_RUN


class DagMissing(ClientError):
    exit_code = EXIT_DAG_MISSING


class DagPaused(ClientError):
    exit_code = EXIT_DAG_PAUSED


class BadCredentials(ClientError):
    """No credentials, wrong ones, or a user who may not do what was asked."""

    exit_code = EXIT_BAD_CREDENTIALS


class AirflowDown(ClientError):
    """Nothing answers at the URL, or Airflow answers that it is not working (HTTP 5xx)."""

    exit_code = EXIT_AIRFLOW_DOWN


class WrongUrl(ClientError):
    """The URL is malformed, names no host, or answers but is not an Airflow 3 API server."""

    exit_code = EXIT_WRONG_URL
