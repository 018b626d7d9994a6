"""The tier's lock: a second test session on the machine waits for the first, saying who holds
the cluster, instead of bringing up a second one on the same fixed ports. No cluster needed:
the lock is a plain flock, exercised here on a file of the test's own."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from tests.kubernetes import cluster

WAIT_TIMEOUT_S = 120  # a loaded 2-core machine: generous, and each wait ends on its condition

HOLDER = """
import fcntl, sys, time
lock = open(sys.argv[1], "a")
fcntl.flock(lock, fcntl.LOCK_EX)
open(sys.argv[2], "w").write("pid 4242 (pytest of another checkout) since 11:00:00\\n")
print("held", flush=True)
sys.stdin.readline()  # hold until the test says so
"""


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_second_session_waits_for_the_cluster_naming_who_holds_it(tmp_path, monkeypatch, capfd):
    lock_file, holder_file = tmp_path / "cluster.lock", tmp_path / "cluster.lock.holder"
    monkeypatch.setattr(cluster, "LOCK_FILE", lock_file)
    monkeypatch.setattr(cluster, "LOCK_HOLDER_FILE", holder_file)
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_file), str(holder_file)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdin is not None
        assert other.stdout.readline().strip() == "held"
        entered = threading.Event()
        leave = threading.Event()

        def second_session() -> None:
            with cluster.exclusive_cluster():
                entered.set()
                leave.wait(WAIT_TIMEOUT_S)

        waiter = threading.Thread(target=second_session, daemon=True)
        waiter.start()
        stderr: list[str] = []  # exclusive_cluster writes straight to the terminal (fd 2)

        def said_it_waits() -> bool:
            stderr.append(capfd.readouterr().err)
            return "waiting for the Kubernetes tier" in "".join(stderr)

        wait_until(said_it_waits, "the waiting message")
        message = "".join(stderr)
        assert "in use by pid 4242 (pytest of another checkout)" in message
        assert "only one cluster can run on this machine" in message
        assert not entered.is_set()  # still queued while the other session holds the cluster

        other.stdin.write("release\n")
        other.stdin.flush()
        other.wait(WAIT_TIMEOUT_S)
        wait_until(entered.is_set, "the second session to get the cluster")
        assert f"pid {os.getpid()}" in holder_file.read_text()  # it now names itself
        leave.set()
        waiter.join(WAIT_TIMEOUT_S)
        assert not holder_file.exists()  # released with the lock
    finally:
        if other.poll() is None:
            other.kill()
            other.wait(WAIT_TIMEOUT_S)

