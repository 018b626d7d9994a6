"""Start `trainyard tensorboard` as a user would and ask TensorBoard's HTTP API what it shows."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request

from tests.conftest import PROJECT_ROOT

TENSORBOARD_START_S = 180


def start_tensorboard(env: dict[str, str], *refs: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainyard.cli", "tensorboard", *refs, "--port", "0"],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    first_line: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: first_line.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = first_line.get(timeout=TENSORBOARD_START_S)
    except queue.Empty:
        line = ""
    if not line.startswith("TensorBoard at "):
        proc.kill()
        raise AssertionError(f"no URL printed: {line!r}; stderr: {proc.communicate(timeout=60)[1][-2000:]}")
    return proc, line.split()[2]


def get_json(url: str, deadline: float, ready) -> object:
    """TensorBoard loads event files in the background: poll until `ready(answer)` or the deadline."""
    answer = None
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=30) as response:
            answer = json.loads(response.read())
        if ready(answer):
            return answer
        time.sleep(0.5)
    raise AssertionError(f"TensorBoard never answered as expected at {url}: {answer}")
