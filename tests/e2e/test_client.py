"""The `trainyard` client against the real Airflow + PostgreSQL of the e2e tier: submit a run, watch
it train, follow its log and cancel it (its trainer process must go away); watch a run to success,
read its logs, list runs, backfill its date as an exact replay; and the errors a user meets, each
one line with its own exit code. Three pipeline runs in all (one cancelled in its first epochs),
to keep the tier's wall time down.

The client is the product's (trainyard.client, the official apache-airflow-client); the tests'
own small REST client (tests/e2e/airflow_api.py) only sets the stage (pausing and unpausing DAGs)
and reads what the tests expect (the replayed run's registered version)."""
from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import trainyard.client
from steps.lifecycle.plan import run_key_for
from tests.e2e.airflow_api import AirflowClient
from tests.trainer_kill import KillReport, kill_mid_epoch
from trainyard.cli import main
from trainyard.client.errors import (
    EXIT_BAD_CREDENTIALS,
    EXIT_BAD_REQUEST,
    EXIT_DAG_MISSING,
    EXIT_DAG_PAUSED,
    EXIT_RUN_FAILED,
    EXIT_UNKNOWN_RUN,
)

pytestmark = [pytest.mark.e2e, pytest.mark.minio]  # the stack's tasks store into the session's MinIO

TRAINING_DAG = "training_pipeline"
RETRAINING_DAG = "scheduled_retraining_intents"  # the intents model: small, and no other e2e test backfills it
RUN_TIMEOUT_S = 900
STOP_TIMEOUT_S = 180


@pytest.fixture
def client_env(airflow, api: AirflowClient, stack_data, monkeypatch):
    """The environment a user sets: the URL, a login, and the MinIO store the stack's tasks write
    (with the user's own keys, as a team member's laptop would have them)."""
    monkeypatch.setenv("TRAINYARD_AIRFLOW_URL", airflow.base_url)
    monkeypatch.setenv("TRAINYARD_AIRFLOW_USERNAME", airflow.admin_user)
    monkeypatch.setenv("TRAINYARD_AIRFLOW_PASSWORD", airflow.admin_password)
    for name, value in {**stack_data.store_settings.public_env(), **stack_data.store_settings.secret_env()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TRAINYARD_CONFIG", raising=False)
    api.wait_for_dag(TRAINING_DAG)
    return airflow


@pytest.fixture
def refusing_endpoint() -> Iterator[str]:
    """host:port held by a socket that never listens: a store this machine cannot reach."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{held.getsockname()[1]}"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _expired(token: str, stack) -> str:
    """The same token, signed by the stack's own JWT secret, but expired an hour ago."""
    import configparser

    import jwt

    config = configparser.ConfigParser(interpolation=None)
    config.read(stack.airflow_home / "airflow.cfg")
    header = jwt.get_unverified_header(token)
    claims = {**jwt.decode(token, options={"verify_signature": False}), "exp": int(time.time()) - 3600}
    return jwt.encode(claims, config["api_auth"]["jwt_secret"], algorithm=header["alg"], headers={"kid": header["kid"]})


def _trainer_pids(run_key: str) -> list[int]:
    """Processes whose environment names this run's trainer job (TRAINYARD_RUN_ID is the run key)."""
    needle = f"TRAINYARD_RUN_ID={run_key}\0".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


@pytest.fixture(scope="module")
def retraining_kill(stack_data) -> KillReport:
    """kill -9 the retraining run's trainer in its epoch 3 (the watch test shows the retry and the resume).
    Armed before the retraining DAG is first unpaused, which the cancel test does early, for wall time."""
    from steps.store import open_store

    return kill_mid_epoch(open_store(stack_data.store_settings), {}, epoch=3, timeout_s=RUN_TIMEOUT_S,
                          run_id_prefix=f"{RETRAINING_DAG}-scheduled__")  # run_key_for's shape


def _start_retraining(api: AirflowClient) -> None:
    """Unpausing a retraining DAG makes the scheduler run its latest date at once (idempotent). Request
    `retraining_kill` first: its killer must be waiting before the trainer starts."""
    api.wait_for_dag(RETRAINING_DAG)
    api.unpause(RETRAINING_DAG)


def _wait_until(condition, timeout_s: float, what: str, poll_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout_s:.0f}s")
        time.sleep(poll_s)


def test_errors_a_user_meets_are_one_line_each_with_their_own_exit_code(client_env, api, capsys, monkeypatch):
    code, _, err = cli(capsys, "status", "no-such-run")
    assert code == EXIT_UNKNOWN_RUN
    assert "no run 'no-such-run' on" in _one_line(err)

    code, _, err = cli(capsys, "submit", "--dag", "no_such_dag", "--param", "epochs=1")
    assert code == EXIT_DAG_MISSING
    assert "DAG 'no_such_dag' does not exist" in _one_line(err)

    was_paused = api.get_dag(TRAINING_DAG)["is_paused"]
    api.set_paused(TRAINING_DAG, True)
    try:
        code, _, err = cli(capsys, "submit", "--dataset", "digits", "--algorithm", "digits-cnn")
    finally:
        api.set_paused(TRAINING_DAG, was_paused)  # later tests of the tier trigger it
    assert code == EXIT_DAG_PAUSED
    assert "DAG 'training_pipeline' is paused" in _one_line(err) and "--unpause" in err

    code, _, err = cli(capsys, "submit", "--dataset", "digits", "--algorithm", "digits-cnn", "--batch-size", "0")
    assert code == EXIT_BAD_REQUEST
    assert _one_line(err) == "trainyard: error: invalid run parameters: batch_size: Input should be greater than or equal to 1"

    # A notebook's session can outlive its token: expired (after a day: 401), or no longer verifiable
    # (the api-server restarted with a new JWT secret, as `make up` does: 403). It logs in again.
    client = trainyard.client.connect()
    for stale in (_expired(client.session._config.access_token, client_env), "a-token-this-server-never-signed"):
        client.session._config.access_token = stale
        assert client.runs(dag_id=TRAINING_DAG, limit=1) is not None
        assert client.session._config.access_token != stale

    wrong_password = "wrong-" + client_env.admin_password
    monkeypatch.setenv("TRAINYARD_AIRFLOW_PASSWORD", wrong_password)
    code, out, err = cli(capsys, "runs")
    assert code == EXIT_BAD_CREDENTIALS
    assert f"refused the login of user '{client_env.admin_user}'" in _one_line(err)
    assert wrong_password not in out + err


def test_submit_then_cancel_stops_the_training_run_and_its_trainer_process(client_env, api, capsys, monkeypatch,
                                                                          refusing_endpoint, retraining_kill):
    code, out, err = cli(capsys, "submit", "--dataset", "digits", "--algorithm", "digits-cnn", "--epochs", "200",
                         "--batch-size", "2", "--model-name", "client-e2e-long", "--unpause")
    assert code == 0, out + err
    run_id = re.search(r"^submitted training_pipeline run (\S+)$", out, re.M).group(1)
    link = f"{client_env.base_url}/dags/training_pipeline/runs/{run_id}"
    assert link in out and requests.get(link, timeout=30).ok
    run_key = run_key_for(TRAINING_DAG, run_id)

    client = trainyard.client.connect()  # the notebook API: URL and login from the environment
    training = _wait_until(lambda: (s := client.status(run_id)).epochs and s, RUN_TIMEOUT_S,
                           "the trainer's first epoch in the store")
    assert training.state == "running" and training.epochs_planned == 200
    code, out, _ = cli(capsys, "status", run_id)
    assert code == 0 and re.search(r"^  train +running +epoch \d+/200: train_loss=\S+ test_loss=", out, re.M), out
    pids = _trainer_pids(run_key)
    assert pids, "the test must see the trainer process it expects to go away"
    followed: list[str] = []
    follower = threading.Thread(target=lambda: followed.extend(client.logs(run_id, "train", follow=True)), daemon=True)
    follower.start()
    # Wall time: the next test's retraining run gets through its first tasks while this one cancels
    # (that test unpauses the DAG again, so it still runs alone).
    _start_retraining(api)

    code, out, err = cli(capsys, "cancel", run_id)
    assert code == 0, out + err
    assert "killing running task(s): train" in out
    assert "trainer stopped: trainer 'digits-cnn' was stopped: its task was killed" in out
    # cancel returned once the train step recorded the stop, which it does after killing and reaping
    # the trainer: by now no process of this run's trainer may exist.
    assert _trainer_pids(run_key) == [], f"trainer processes of {run_key} outlived the cancel (were {pids})"
    follower.join(STOP_TIMEOUT_S)
    assert not follower.is_alive(), "logs --follow must end when the task ends"
    assert any("[trainer] epoch 1/200 " in line for line in followed)  # the trainer's progress line
    assert any("task killed: stopped 1 running trainer(s)" in line for line in followed)

    code, out, _ = cli(capsys, "status", run_id)
    assert code == EXIT_RUN_FAILED
    assert re.search(r"^  train +failed .* epoch \d+/200: train_loss=", out, re.M), out
    assert re.search(r"^  register +skipped", out, re.M)
    assert "train failed (stopped): trainer 'digits-cnn' was stopped" in out
    assert "registered" not in out

    # From a machine that cannot reach the store: what Airflow knows, with the reason from the task log.
    monkeypatch.setenv("TRAINYARD_MINIO_ENDPOINT", refusing_endpoint)
    code, out, _ = cli(capsys, "status", run_id)
    assert code == EXIT_RUN_FAILED
    assert "store not reachable from here (" in out
    assert "train failed: TrainerStopped: trainer 'digits-cnn' was stopped" in out


def test_watch_to_success_logs_runs_and_a_backfill_that_replays_the_run_exactly(client_env, api, capsys,
                                                                                retraining_kill):
    # Unpausing a retraining DAG makes the scheduler run its latest date at once: the run to watch,
    # and the registered model the backfill replays. Its trainer is killed (kill -9) in epoch 3: the
    # watch shows the failure and that it will retry, then where the retry resumed; and the exact replay
    # of the resumed model (trained from epoch 1) must still match its weights.
    kill = retraining_kill
    _start_retraining(api)
    scheduled = _wait_until(lambda: next(iter(api.list_runs(RETRAINING_DAG, run_type="scheduled")), None),
                            RUN_TIMEOUT_S, f"{RETRAINING_DAG}'s scheduled run")
    run_id, day = scheduled["dag_run_id"], scheduled["logical_date"][:10]

    code, out, err = cli(capsys, "status", run_id, "--watch")
    assert code == 0, out + err + api.explain_run(RETRAINING_DAG, run_id)
    assert kill.done.wait(timeout=60) and kill.error is None, kill.error
    original = api.xcom(RETRAINING_DAG, run_id, "register")
    registered = f"{original['model_name']}@{original['version']}"
    assert "train: epoch 8/8: train_loss=" in out  # config/retraining.yaml: 8 epochs for intents
    killed = "train on try 1 (trainer-exit, retryable): trainer 'intent-classification' exited with code -9"
    assert "\ntrain: up_for_retry\n" in out and f"\ntrain: failed, will retry: {killed}\n" in out, out
    resumed = re.search(r"^train: resumed: yes: at epoch (\d) from the checkpoint of epoch (\d) \(runs/\S+\)$", out, re.M)
    assert resumed and int(resumed[1]) >= 3 and int(resumed[2]) == int(resumed[1]) - 1, out
    # The final status: the resumed trainer's checkpoints, the resume, and the failure it recovered from.
    assert "  training          : finished 8 of 8 epochs (last: " in out and "; newest checkpoint: epoch 8" in out
    assert f"  earlier try failed: {killed}" in out
    assert f"\nrun success\nregistered {registered} (champion: yes)\n" in out, out

    code, out, _ = cli(capsys, "logs", run_id, "--task", "train")
    assert code == 0 and '[trainer] epoch 8/8 ' in out and "trainyard-trainer: train done" in out
    code, out, _ = cli(capsys, "runs", "--dataset", "intents")
    assert code == 0
    assert re.search(rf"^{re.escape(run_id)} +{RETRAINING_DAG} +success +intents +intent-classification", out, re.M), out
    code, out, _ = cli(capsys, "runs", "--state", "failed")
    assert run_id not in out

    code, out, err = cli(capsys, "backfill", "--dag", RETRAINING_DAG, "--from", day, "--to", day, "--replay", "exact",
                         "--reprocess", "completed", "--poll-s", "3")
    assert code == 0, out + err
    assert f"1 date(s): {day}" in out
    assert re.search(rf"^  {day}  success  replayed {registered} exactly: weights match "
                     rf"\({original['weights_sha256'][:12]}\)", out, re.M), out
