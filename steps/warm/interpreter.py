"""Warm interpreters, for a process that runs every task of a run itself (`trainyard run`).

A trainer spends seconds importing torch, a validation seconds importing Great Expectations,
before either reads a byte of data. When one process runs the whole DAG (dag.test), the runner
allows warm interpreters for the length of the run and starts those the run will need at once,
on the core Airflow's own start-up leaves idle: each imports its libraries and waits. The step
hands it its job (the same entrypoint, arguments, environment and working directory a new
process would get) instead of starting a new Python. Whatever finds no warm interpreter (a
deployed Airflow, where every task is its own process and nothing enables this; a second trainer
in one run) starts a new process, as before.

Protocol (steps/warm/boot.py): the interpreter starts with only PATH, PYTHONPATH and
PYTHONHASHSEED (fixed at interpreter start, so it is already the job's value), runs its preloads,
then reads one JSON line {entrypoint, args, env, cwd} from stdin, replaces its whole environment
with `env` and runs the entrypoint as __main__. Stdout and stderr are one text pipe, as the
executors read a new process's; EOF on stdin before a job (discarded, or the runner died) ends it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

_lock = threading.Lock()
_waiting: list[WarmInterpreter] = []
_enabled = False


class WarmInterpreter:
    def __init__(self, purpose: str, python: str, project_root: Path, preload: Sequence[str]):
        self.purpose = purpose
        self.python = python
        self.project_root = project_root
        env = {  # no locale variables: see steps/warm/boot.py
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(project_root),
            "PYTHONHASHSEED": "0",
        }
        self.process = subprocess.Popen(
            [python, "-m", "steps.warm.boot", *preload],
            env=env,
            cwd=project_root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # as a new trainer process: a deadline kills its whole group
        )

    def matches(self, purpose: str, python: str, project_root: Path) -> bool:
        return (self.purpose, self.python, self.project_root) == (purpose, python, project_root) and (
            self.process.poll() is None
        )

    def start(self, entrypoint: Path, env: dict[str, str], cwd: str, args: Sequence[str] = ()) -> subprocess.Popen:
        """Hand over the job; from here on the process is the job's, as a new Popen would be."""
        assert self.process.stdin is not None
        job = {"entrypoint": str(entrypoint), "args": list(args), "env": env, "cwd": cwd}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.close()
        return self.process

    def discard(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()


def enable() -> None:
    """Only a process that runs every task of a run itself may keep interpreters warm for it."""
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def prewarm(purpose: str, python: str, project_root: Path, preload: Sequence[str]) -> bool:
    """Start a warm interpreter for `purpose` unless one is waiting (nothing unless enabled).
    Returns whether one is waiting."""
    with _lock:
        if not _enabled:
            return False
        if not any(warm.matches(purpose, python, project_root) for warm in _waiting):
            _waiting.append(WarmInterpreter(purpose, python, project_root, preload))
        return True


def take(purpose: str, python: str, project_root: Path) -> WarmInterpreter | None:
    with _lock:
        for index, warm in enumerate(_waiting):
            if warm.matches(purpose, python, project_root):
                return _waiting.pop(index)
    return None


def discard_all() -> int:
    """End the warm interpreters nobody used (the run failed, or a guess was wrong) and stop
    allowing new ones."""
    global _enabled
    with _lock:
        _enabled = False
        unused = list(_waiting)
        _waiting.clear()
    for warm in unused:
        warm.discard()
    return len(unused)
