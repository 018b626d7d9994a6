"""The stall watchdog, inside the trainer process: the one place that sees every batch finish, on every
executor (subprocess, container, Kubernetes pod).

Two layers, because a hang can be anywhere:

1. A Python thread checks how long ago the loop last made progress. Past `timeout_s` it dumps every
   thread's stack, prints `trainyard-trainer: error: stalled: ...` and exits with EXIT_STALLED. This
   covers everything that waits with the GIL released: I/O, a lock, a collective, a sleeping kernel.
2. Native code that hangs while holding the GIL stops that thread too. For that, the thread keeps
   re-arming `faulthandler.dump_traceback_later`, whose timer is a C thread that needs no GIL: if the
   Python layer has not acted `native_grace_s` after the deadline, faulthandler prints
   `Timeout (H:MM:SS)!` and the stacks, and exits 1. `stall_from_exit` recognises that ending.
"""
from __future__ import annotations

import faulthandler
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from steps.training.contract import EXIT_STALLED

ERROR_PREFIX = "trainyard-trainer: error: "
STALLED_PREFIX = "stalled: "
_FAULTHANDLER_TIMEOUT_RE = re.compile(r"^Timeout \((\d+):(\d\d):(\d\d)(?:\.\d+)?\)!$")


def native_grace_s(timeout_s: float) -> float:
    return max(5.0, timeout_s * 0.1)


class StallWatchdog:
    def __init__(
        self,
        timeout_s: float,
        *,
        out: TextIO | None = None,
        exit_process: Callable[[int], object] = os._exit,
    ) -> None:
        self.timeout_s = float(timeout_s)
        self._out = out or sys.__stderr__ or sys.stderr
        self._exit = exit_process
        self._poll_s = min(1.0, self.timeout_s / 4)
        self._last_progress = time.monotonic()
        self._epoch = 0
        self._batch = 0
        self._activity = "starting the first epoch"
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the loop calls ------------------------------------------------------------
    def batch_done(self, epoch: int, batch: int) -> None:
        # Called for every batch: three assignments, nothing else.
        self._epoch, self._batch, self._activity = epoch, batch, ""
        self._last_progress = time.monotonic()

    def doing(self, activity: str) -> None:
        """Progress too: a phase between batches began (evaluation, a checkpoint upload, ...)."""
        self._activity = activity
        self._last_progress = time.monotonic()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> StallWatchdog:
        if self.timeout_s <= 0:
            return self
        self._last_progress = time.monotonic()
        # Armed here, not first in the thread: the caller may enter a GIL-holding hang before it runs.
        faulthandler.dump_traceback_later(self.timeout_s + native_grace_s(self.timeout_s), exit=True, file=self._out)
        self._thread = threading.Thread(target=self._watch, name="trainyard-stall-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            faulthandler.cancel_dump_traceback_later()

    def __enter__(self) -> StallWatchdog:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def where(self) -> str:
        if self._activity:
            return self._activity
        return f"training epoch {self._epoch}, after batch {self._batch}"

    def _watch(self) -> None:
        grace_s = native_grace_s(self.timeout_s)
        while not self._stopped.wait(self._poll_s):
            idle_s = time.monotonic() - self._last_progress
            if idle_s >= self.timeout_s:
                self._fire(idle_s)
                return
            # The backstop for a hang that holds the GIL: this thread would never get here again.
            faulthandler.dump_traceback_later(self.timeout_s - idle_s + grace_s, exit=True, file=self._out)

    def _fire(self, idle_s: float) -> None:
        faulthandler.cancel_dump_traceback_later()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        print("trainyard-trainer: stacks of every thread at the stall:", file=self._out, flush=True)
        faulthandler.dump_traceback(file=self._out, all_threads=True)
        print(
            f"{ERROR_PREFIX}{STALLED_PREFIX}no progress for {idle_s:.0f} s (stall_timeout_s={self.timeout_s:g}) "
            f"while {self.where()}",
            file=self._out,
            flush=True,
        )
        self._exit(EXIT_STALLED)


def stall_from_exit(exit_code: int, log_lines: list[str]) -> str | None:
    """The one-line reason a trainer exit was a stall, or None. Knows both watchdog layers' endings."""
    if exit_code == EXIT_STALLED:
        for line in reversed(log_lines):
            if line.startswith(ERROR_PREFIX + STALLED_PREFIX):
                return line[len(ERROR_PREFIX) :]
        return "stalled: the trainer's stall watchdog stopped it"
    if exit_code == 1:
        for line in log_lines:
            match = _FAULTHANDLER_TIMEOUT_RE.match(line.strip())
            if match:
                hours, minutes, seconds = (int(g) for g in match.groups())
                waited_s = hours * 3600 + minutes * 60 + seconds
                return (
                    f"stalled: no progress for {waited_s} s and the trainer was stuck in native code "
                    "(faulthandler stopped it; its stacks are in the trainer log)"
                )
    return None
