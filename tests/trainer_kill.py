"""kill -9 a real trainer process in the middle of an epoch, from a background thread, while a test
runs the pipeline in the foreground.

The trainer is found among this machine's processes by its environment (a container's processes are
host processes too, so this works for the subprocess and the container executor alike). "The middle of
epoch N" is measured in the trainer's own CPU time, not wall time, so a loaded machine does not move
the kill: after the checkpoint of epoch N-1 appears, the trainer is killed once it has spent half of
one epoch's CPU time (measured between the checkpoints of epochs N-2 and N-1).
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field

import psutil

from steps.store import ArtifactStore
from steps.store.run_layout import TrainerOutputs

POLL_S = 0.01


@dataclass
class KillReport:
    pid: int | None = None
    run_id: str | None = None
    epoch_cpu_s: float | None = None
    killed_at_cpu_s: float | None = None
    previous_checkpoint_existed: bool = False  # epoch N-1's, when the kill landed
    own_checkpoint_existed: bool = True  # epoch N's, when the kill landed: must be False for "mid-epoch"
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _trainer_processes(env_match: dict[str, str], run_id_prefix: str = "") -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if not cmdline or not cmdline[-1].endswith("train.py"):
                continue
            environ = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        run_id = environ.get("TRAINYARD_RUN_ID")
        if run_id is not None and run_id.startswith(run_id_prefix) and all(environ.get(k) == v for k, v in env_match.items()):
            found.append(proc)
    return found


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _wait(condition, deadline: float, what: str):
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    raise TimeoutError(f"gave up waiting for {what}")


def kill_mid_epoch(
    store: ArtifactStore, env_match: dict[str, str], *, epoch: int, timeout_s: float = 900, run_id_prefix: str = ""
) -> KillReport:
    """Start the killer; the returned report's `done` is set once it has acted (or given up).

    The trainer killed is the first whose environment has `env_match` and whose run key (TRAINYARD_RUN_ID)
    starts with `run_id_prefix`."""
    if epoch < 3:
        raise ValueError("the epoch's CPU time is measured between two earlier checkpoints: epoch must be >= 3")
    report = KillReport()

    def run() -> None:
        deadline = time.monotonic() + timeout_s
        try:
            proc = _wait(lambda: next(iter(_trainer_processes(env_match, run_id_prefix)), None), deadline, "the trainer to start")
            environ = proc.environ()
            report.pid, report.run_id = proc.pid, environ["TRAINYARD_RUN_ID"]
            outputs = TrainerOutputs(environ["TRAINYARD_OUTPUT_PREFIX"])
            _wait(lambda: store.exists(outputs.checkpoint_marker(epoch - 2)), deadline, f"checkpoint {epoch - 2}")
            started = _cpu_s(proc)
            _wait(lambda: store.exists(outputs.checkpoint_marker(epoch - 1)), deadline, f"checkpoint {epoch - 1}")
            ended = _cpu_s(proc)
            report.epoch_cpu_s = ended - started
            target = ended + report.epoch_cpu_s / 2
            _wait(lambda: _cpu_s(proc) >= target, deadline, "the middle of the epoch")
            report.killed_at_cpu_s = _cpu_s(proc)
            proc.send_signal(signal.SIGKILL)
            report.previous_checkpoint_existed = store.exists(outputs.checkpoint_marker(epoch - 1))
            report.own_checkpoint_existed = store.exists(outputs.checkpoint_marker(epoch))
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            report.error = f"{type(exc).__name__}: {exc}"
        finally:
            report.done.set()

    threading.Thread(target=run, name="trainer-killer", daemon=True).start()
    return report
