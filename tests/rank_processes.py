"""Finding and timing a distributed run's rank processes from a test (a container's processes are
this host's processes too), so a test can kill one rank mid-training."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TRAINER_LOGGER = "steps.executors.trainer_process"  # every executor streams the trainer's lines here


def pid_of_rank(run_id: str, rank: int) -> int:
    """The worker torchrun started as `rank` for this run (torchrun's own agent has no RANK)."""
    wanted = {f"TRAINYARD_RUN_ID={run_id}".encode(), f"RANK={rank}".encode()}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = set((entry / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if wanted <= environ:
                return int(entry.name)
    raise AssertionError(f"no process of run {run_id} has RANK={rank}")


@contextmanager
def seeing_log_line(fragment: str) -> Iterator[threading.Event]:
    """An event set once the trainer's streamed log shows a line containing `fragment`."""
    seen = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if fragment in record.getMessage():
                seen.set()

    watch = Watch()
    logger = logging.getLogger(TRAINER_LOGGER)
    level = logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)


def in_thread(function: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Start `function` in a thread; the list receives whatever it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            function()
        except BaseException as exc:  # noqa: BLE001 - the test reports whatever the run raised
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, raised
