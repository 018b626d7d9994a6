"""The embedded executor: the trainer's entrypoint as a local subprocess, with exactly
the environment a Kubernetes pod would get (plus PATH/PYTHONPATH to find Python). Under the
embedded runner the process may be a warm interpreter that already imported torch
(steps/warm/interpreter.py); the job, environment and entrypoint are the same."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

from steps.executors.base import TrainerFailed
from steps.executors.trainer_process import run_trainer_process, trainer_result
from steps.images.trainer_image import TrainerImage
from steps.project_root import PROJECT_ROOT
from steps.store import StoreSettings
from steps.training.contract import ENV_SCRATCH_DIR, TrainerResult, TrainingJob
from steps.training.trainer_env import trainer_public_env, trainer_secret_env
from steps.warm import interpreter as warm_interpreters

log = logging.getLogger(__name__)

WARM_PURPOSE = "trainer"
#: What a trainer imports before it reads its job: the heavy libraries and the shared runtime.
#: Importing them reads no job setting (those arrive through the environment later).
TRAINER_PRELOAD = ("torch", "numpy", "pandas", "safetensors.torch", "steps.training.runtime", "steps.training.loop",
                   "steps.data.dataset_reader", "steps.data.snapshot", "steps.store.local")


def prewarm_trainer(python: str = sys.executable, project_root: Path = PROJECT_ROOT) -> bool:
    """Under the embedded runner: start the interpreter this executor's next trainer will run in."""
    return warm_interpreters.prewarm(WARM_PURPOSE, python, project_root, TRAINER_PRELOAD)


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
        with tempfile.TemporaryDirectory(prefix="trainyard-scratch-") as scratch:
            env = self.environment(job, store, scratch)
            warm = warm_interpreters.take(WARM_PURPOSE, self.python, self.project_root)
            log.info("running trainer %s in %s", job.algorithm, "a warm interpreter" if warm else "a new process")
            outcome = run_trainer_process(
                [self.python, str(entrypoint)],
                env=env,
                cwd=scratch,
                deadline_s=deadline_s,
                secrets=trainer_secret_env(store),
                started=warm.start(entrypoint, env, scratch) if warm else None,
            )
        return trainer_result(job, outcome, store, f" (deadline {deadline_s}s)" if outcome.timed_out else "")
