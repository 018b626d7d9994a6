"""The embedded executor: the trainer's entrypoint as a local subprocess, with exactly
the environment a Kubernetes pod would get (plus PATH/PYTHONPATH to find Python)."""
from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from steps.contract import ENV_SCRATCH_DIR, TrainerResult, TrainingJob
from steps.executors.base import TrainerFailed, TrainerImage
from steps.executors.code_hash import PROJECT_ROOT
from steps.executors.environment import redact, trainer_public_env, trainer_secret_env
from steps.store import StoreSettings, open_store

log = logging.getLogger(__name__)
LOG_TAIL_LINES = 20


def exit_code_is_kill(proc: subprocess.Popen) -> bool:
    return proc.returncode is not None and proc.returncode < 0


class SubprocessExecutor:
    kind = "subprocess"

    def __init__(self, python: str = sys.executable, project_root: Path = PROJECT_ROOT):
        self.python = python
        self.project_root = project_root

    def environment(self, job: TrainingJob, store: StoreSettings, scratch_dir: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(self.project_root),
            "PYTHONHASHSEED": "0",
            "HOME": scratch_dir,
            ENV_SCRATCH_DIR: scratch_dir,
            "TMPDIR": scratch_dir,  # as in the pod, where the root filesystem is read-only
            **trainer_public_env(job, store),
            **trainer_secret_env(store),
        }

    def run(self, job: TrainingJob, image: TrainerImage, store: StoreSettings, *, deadline_s: int) -> TrainerResult:
        entrypoint = self.project_root / image.entrypoint
        if not entrypoint.is_file():
            raise TrainerFailed(f"trainer entrypoint {image.entrypoint} for {job.algorithm!r} does not exist")
        secrets = trainer_secret_env(store)
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        full_log: list[str] = []
        with tempfile.TemporaryDirectory(prefix="trainyard-scratch-") as scratch:
            proc = subprocess.Popen(
                [self.python, str(entrypoint)],
                env=self.environment(job, store, scratch),
                cwd=scratch,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            # A hung trainer must not hang the task: kill it at the deadline.
            deadline = threading.Timer(deadline_s, proc.kill)
            deadline.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    line = redact(line.rstrip("\n"), secrets)
                    tail.append(line)
                    full_log.append(line)
                    log.info("[trainer] %s", line)
                exit_code = proc.wait()
            finally:
                timed_out = not deadline.is_alive() and exit_code_is_kill(proc)
                deadline.cancel()
            if timed_out:
                raise TrainerFailed(
                    f"trainer {job.algorithm!r} exceeded its deadline of {deadline_s}s; last log lines:\n"
                    + "\n".join(tail)
                )
        artifacts = open_store(store)
        artifacts.put_bytes(f"{job.output_prefix}/trainer.log", ("\n".join(full_log) + "\n").encode())
        if exit_code != 0:
            raise TrainerFailed(
                f"trainer {job.algorithm!r} exited with code {exit_code}; last log lines:\n" + "\n".join(tail)
            )
        return TrainerResult.model_validate_json(artifacts.get_bytes(job.result_output_key))
