"""What `trainyard run` shows: the whole Airflow log (task-runner chatter, tracebacks, the trainer's
lines) goes to a file; the terminal sees which step is running and the steps' own lines; a failed
run ends with one short paragraph saying which step failed, why (in the step's own words, as it
recorded in runs/<run_key>/failures/<step>.json) and where the full log is."""
from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TextIO

# Airflow 3's console log lines: "2026-11-29T08:07:47.158412Z [error    ] message ...".
_AIRFLOW_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z \[\s*(\w+)\s*\] (.*)$")
_TASK_STARTS = re.compile(r"^\[DAG TEST\] starting task_id=(\S+)")
_PIPELINE = ("plan", "snapshot", "validate", "train", "evaluate", "register")
_PIPE_DRAIN_S = 10.0  # a child that inherited the pipe and outlives the run must not hold the CLI


def run_log_path(dag_id: str) -> Path:
    from steps.store.settings import trainyard_home

    logs = trainyard_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{dag_id}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}.log"


class TerminalFilter:
    """Decides, line by line, what of the full log a person watching the terminal sees."""

    def __init__(self) -> None:
        self.in_traceback = False

    def shown(self, line: str) -> str | None:
        airflow = _AIRFLOW_LINE.match(line)
        if airflow is not None:
            self.in_traceback = False  # a traceback runs until the next log record
            started = _TASK_STARTS.match(airflow.group(2))
            return f"[{started.group(1)}]" if started else None
        if line.startswith("Traceback (most recent call last):"):
            self.in_traceback = True
        if self.in_traceback or not line.strip():
            return None
        return f"  {line}"


def _pump(source: BinaryIO, log: BinaryIO, terminal: TextIO) -> None:
    keep = TerminalFilter()
    for raw in source:
        log.write(raw)
        log.flush()
        shown = keep.shown(raw.decode("utf-8", "replace").rstrip("\n"))
        if shown is not None:
            try:
                terminal.write(shown + "\n")
                terminal.flush()
            except (BrokenPipeError, ValueError):
                pass  # nobody is reading the terminal any more; the file still gets everything


@contextmanager
def output_to_log(log_path: Path) -> Iterator[None]:
    """Send everything this process (and children that inherit stdout/stderr) writes to fd 1 and 2
    into `log_path`, echoing only what TerminalFilter keeps."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    read_fd, write_fd = os.pipe()
    log = open(log_path, "ab")
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8", errors="replace")
    source = os.fdopen(read_fd, "rb")
    pump = threading.Thread(target=_pump, args=(source, log, terminal), name="trainyard-run-log", daemon=True)
    pump.start()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)  # closes the pipe's last write ends in this process: the pump sees EOF
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        pump.join(_PIPE_DRAIN_S)
        if not pump.is_alive():
            source.close()
            log.close()
            terminal.close()


def _pipeline_order(task: str) -> tuple[int, str]:
    return (_PIPELINE.index(task) if task in _PIPELINE else len(_PIPELINE), task)


def failure_paragraph(run, failures: dict, log_path: Path) -> str:
    """Which step failed and why, what did not run, and where the full log is."""
    lines = [f"{run.dag_id} run {run.run_id} failed after {run.wall_time_s:.1f}s."]
    for task in run.failed_tasks or ["(unknown)"]:
        failure = failures.get(task)
        if failure is not None:
            lines.append(f"{task} failed: {failure.reason}")
        else:
            lines.append(f"{task} failed without recording why; the log has its traceback.")
    if run.upstream_failed_tasks:
        lines.append(f"Not run: {', '.join(sorted(run.upstream_failed_tasks, key=_pipeline_order))}.")
    lines.append(f"Full log: {log_path}")
    return "\n".join(lines)
