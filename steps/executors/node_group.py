"""Run the nodes of a multi-node trainer side by side on this machine (one container each): every
node's redacted log with a "[node<i>] " prefix, one deadline for all, and the other nodes stopped a
short grace after the first one fails, so a dead rank never leaves the rest waiting on it.
"""
from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from steps.executors.rank_failure import NODE_PREFIX
from steps.executors.trainer_process import TrainerProcessOutcome, keep_lines

#: After one node fails, how long the others get to fail on their own (and print torchrun's
#: report) before they are stopped. gloo notices a dead peer at its next collective, in well under this.
FAILED_NODE_GRACE_S = 30


@contextmanager
def reserved_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port nobody else is handed while the run lasts. The socket stays bound but never listens,
    with SO_REUSEADDR, so node 0's rendezvous store (which also sets it) can listen on the same port."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((host, 0))
        yield holder.getsockname()[1]
    finally:
        holder.close()


def run_node_group(
    commands: list[list[str]],
    *,
    env: dict[str, str],
    deadline_s: int,
    secrets: dict[str, str],
    stop_all: Callable[[], None],
    failed_node_grace_s: float = FAILED_NODE_GRACE_S,
) -> TrainerProcessOutcome:
    """Node i runs commands[i]. The outcome's exit code is the first node failure's (0 if none failed)."""
    lines: list[str] = []
    exits: list[int] = []  # in the order the nodes ended
    exits_lock = threading.Lock()
    deadline_fired = threading.Event()
    stopping = threading.Event()

    def stop(reason: threading.Event | None = None) -> None:
        if reason is not None:
            reason.set()
        if not stopping.is_set():
            stopping.set()
            stop_all()

    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        for command in commands
    ]
    grace_timers: list[threading.Timer] = []

    def watch(index: int, proc: subprocess.Popen) -> None:
        keep_lines(proc, lines, secrets, NODE_PREFIX.format(index=index))
        code = proc.wait()
        with exits_lock:
            exits.append(code)
            first_failure = code != 0 and sum(1 for c in exits if c != 0) == 1
        if first_failure:
            timer = threading.Timer(failed_node_grace_s, stop)
            grace_timers.append(timer)
            timer.start()

    watchers = [threading.Thread(target=watch, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    deadline = threading.Timer(deadline_s, stop, args=(deadline_fired,))
    deadline.start()
    try:
        for watcher in watchers:
            watcher.start()
        for watcher in watchers:
            watcher.join()
    finally:
        deadline.cancel()
        for timer in grace_timers:
            timer.cancel()
    first_failed = next((code for code in exits if code != 0), 0)
    return TrainerProcessOutcome(first_failed, deadline_fired.is_set() and first_failed != 0, lines)
