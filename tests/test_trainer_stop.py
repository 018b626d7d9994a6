"""A killed task stops its trainer: the trainer runs in its own session (so a deadline can kill its
whole group), which also means Airflow's signal to the task never reaches it; the task's on_kill
calls stop_running_trainers(), which must end the trainer and every process it started."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from steps.executors.base import TrainerStopped
from steps.executors.trainer_process import run_trainer_process, stop_running_trainers, trainer_result
from steps.lifecycle.run_failure import failure_from_exception
from steps.store import StoreSettings
from steps.training.contract import TrainingJob

DEADLINE_S = 120.0

# A trainer that starts a grandchild (as a data loader or a shell would), writes both pids, then hangs.
_TRAINER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(f"{os.getpid()} {child.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie has already stopped
    except FileNotFoundError:
        return False


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {DEADLINE_S:.0f}s")
        time.sleep(0.1)


def test_stop_running_trainers_ends_a_hung_trainer_and_its_children_and_the_step_says_why(tmp_path):
    pids_file = tmp_path / "pids"
    outcome = {}
    runner = threading.Thread(
        target=lambda: outcome.update(result=run_trainer_process(
            [sys.executable, "-c", _TRAINER, str(pids_file)], env=dict(os.environ), deadline_s=3600, secrets={})),
        daemon=True,
    )
    runner.start()
    _wait_for(pids_file.exists, "the trainer to start its child")
    trainer, grandchild = (int(pid) for pid in pids_file.read_text().split())

    assert stop_running_trainers() == 1

    runner.join(DEADLINE_S)
    assert not runner.is_alive(), "run_trainer_process did not return after the stop"
    result = outcome["result"]
    assert result.stopped and not result.timed_out and result.exit_code != 0
    _wait_for(lambda: not _alive(trainer) and not _alive(grandchild), "the trainer and its child to end")
    assert stop_running_trainers() == 0, "a finished trainer must not stay registered"

    job = TrainingJob(run_id="r", algorithm="digits-cnn", dataset_name="digits", dataset_hash="0" * 64,
                      dataset_snapshot_key="datasets/snapshots/digits/x.json", output_prefix="runs/r/train",
                      seed=1, split_seed=1, test_fraction=0.2, hyperparameters={}, num_threads=1)
    with pytest.raises(TrainerStopped, match="was stopped: its task was killed") as raised:
        trainer_result(job, result, StoreSettings(backend="local", root=str(tmp_path / "store")))
    failure = failure_from_exception("r", "train", raised.value)
    assert (failure.kind, failure.retryable) == ("stopped", True)


def test_an_interrupted_wait_ctrl_c_on_trainyard_run_stops_the_trainer_too(tmp_path):
    pids_file = tmp_path / "pids"

    def press_ctrl_c_once_the_trainer_runs() -> None:
        _wait_for(pids_file.exists, "the trainer to start its child")
        os.kill(os.getpid(), signal.SIGINT)  # what a terminal sends to `trainyard run` (never to the trainer)

    # Python turns SIGINT into KeyboardInterrupt only where it was not ignored at start-up, and a
    # suite started in the background by a non-interactive shell (CI, nohup ... &) inherits it ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=press_ctrl_c_once_the_trainer_runs, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run_trainer_process([sys.executable, "-c", _TRAINER, str(pids_file)], env=dict(os.environ),
                                deadline_s=3600, secrets={})
    finally:
        signal.signal(signal.SIGINT, previous)
    trainer, grandchild = (int(pid) for pid in pids_file.read_text().split())
    _wait_for(lambda: not _alive(trainer) and not _alive(grandchild), "the trainer and its child to end")
