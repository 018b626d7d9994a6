"""Run a trainer command, stream its redacted log, enforce the deadline, and turn the
outcome into a TrainerResult or a TrainerFailed carrying the last log lines.
Shared by the subprocess and container executors."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from steps.executors.base import TrainerFailed, TrainerStopped
from steps.executors.rank_failure import distributed_failure
from steps.store import StoreSettings, open_store
from steps.training.contract import TrainerResult, TrainingJob
from steps.training.trainer_env import redact
from steps.training.trainer_exit import classify_exit

log = logging.getLogger(__name__)
LOG_TAIL_LINES = 20
KILL_WAIT_S = 60  # how long an interrupted run waits for the trainer it killed to exit

# Trainers this process is running, each with how to stop it. A trainer runs in its own session
# (below), so when Airflow kills the task that started it (a cancelled run, a timeout, a worker
# shutdown) the signal does not reach it: the task's on_kill calls stop_running_trainers().
_running_lock = threading.RLock()  # re-entrant: on_kill runs in a signal handler, maybe mid-update
_running: dict[int, Callable[[], None]] = {}


def stop_running_trainers() -> int:
    """Stop every trainer this process started that is still running; returns how many."""
    with _running_lock:
        stops = list(_running.values())
    for stop in stops:
        stop()
    return len(stops)


@dataclass(frozen=True)
class TrainerProcessOutcome:
    exit_code: int
    timed_out: bool
    log_lines: list[str]
    stopped: bool = False  # stop_running_trainers() ended it

    @property
    def tail(self) -> str:
        return "\n".join(self.log_lines[-LOG_TAIL_LINES:])


def run_trainer_process(
    command: list[str],
    *,
    env: dict[str, str],
    deadline_s: int,
    secrets: dict[str, str],
    on_deadline: Callable[[subprocess.Popen], None] | None = None,
    cwd: str | None = None,
    started: subprocess.Popen | None = None,
) -> TrainerProcessOutcome:
    """`started`: a trainer process already running the job (a warm interpreter, started the same
    way: its own session, stdout and stderr on one text pipe); otherwise `command` is started."""
    # Its own session, so the deadline can kill grandchildren that hold the log pipe open.
    proc = started or subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    fired = threading.Event()
    stop_requested = threading.Event()
    kill = on_deadline or _kill_process_group

    def deadline_reached() -> None:  # a hung trainer must not hang the task
        fired.set()
        kill(proc)

    def stop() -> None:
        stop_requested.set()
        kill(proc)

    timer = threading.Timer(deadline_s, deadline_reached)
    lines: list[str] = []
    try:
        timer.start()
        with _running_lock:
            _running[proc.pid] = stop
        keep_lines(proc, lines, secrets)
        exit_code = proc.wait()
    except BaseException:
        # An interrupted wait (Ctrl-C on `trainyard run`, a task timeout) must not leave the trainer
        # running: in its own session, no signal meant for us reaches it.
        kill(proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=KILL_WAIT_S)
        raise
    finally:
        timer.cancel()
        with _running_lock:
            _running.pop(proc.pid, None)
    # A timer (or a stop) that fires just after a clean exit did not stop anything.
    return TrainerProcessOutcome(
        exit_code, fired.is_set() and exit_code != 0, lines, stopped=stop_requested.is_set() and exit_code != 0
    )


def keep_lines(proc: subprocess.Popen, lines: list[str], secrets: dict[str, str], prefix: str = "") -> None:
    """Read the process's output to its end: redacted, logged, appended to `lines` (list.append is atomic)."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = prefix + redact(raw.rstrip("\n"), secrets)
        lines.append(line)
        log.info("[trainer] %s", line)


def _kill_process_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def trainer_result(job: TrainingJob, outcome: TrainerProcessOutcome, store: StoreSettings, where: str = "") -> TrainerResult:
    """Keep the log beside the outputs, then fail loudly or read the trainer's result.json."""
    artifacts = open_store(store)
    artifacts.put_bytes(job.outputs.trainer_log, ("\n".join(outcome.log_lines) + "\n").encode())
    if outcome.stopped:
        raise TrainerStopped(
            f"trainer {job.algorithm!r} was stopped: its task was killed (run cancelled or marked failed, "
            f"or its worker shut down){where}"
        )
    if outcome.exit_code != 0 and not outcome.timed_out and job.shape.distributed:
        raise distributed_failure(job.algorithm, job.shape, outcome.log_lines, outcome.exit_code, where)
    if outcome.timed_out or outcome.exit_code != 0:
        ended = classify_exit(job.algorithm, outcome.exit_code, outcome.log_lines, timed_out=outcome.timed_out, where=where)
        raise TrainerFailed(f"{ended.reason}\nlast log lines:\n{outcome.tail}", failure_kind=ended.kind)
    return TrainerResult.model_validate_json(artifacts.get_bytes(job.result_output_key))
