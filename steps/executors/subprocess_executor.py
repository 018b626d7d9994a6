"""The embedded executor: the trainer's entrypoint as a local subprocess (torchrun with
`--standalone` for procs_per_node > 1, on this one machine), with exactly the environment a
Kubernetes pod would get (plus PATH/PYTHONPATH to find Python). Under the embedded runner a
one-process trainer may run in a warm interpreter that already imported torch
(steps/warm/interpreter.py); the job, environment and entrypoint are the same."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

from steps.executors.base import TrainerFailed, refuse_unsupported_shape
from steps.executors.trainer_process import run_trainer_process, trainer_result
from steps.images.trainer_image import TrainerImage
from steps.project_root import PROJECT_ROOT
from steps.store import StoreSettings
from steps.training.contract import ENV_SCRATCH_DIR, TrainerResult, TrainingJob
from steps.training.launch import torchrun_command
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

    def command(self, job: TrainingJob, entrypoint: Path) -> list[str]:
        """One process runs the script itself; more are started by torchrun with this venv's Python."""
        if not job.shape.distributed:
            return [self.python, str(entrypoint)]
        refuse_unsupported_shape(self.kind, job.shape)
        return torchrun_command(self.python, str(entrypoint), job.shape)

    def run(self, job: TrainingJob, image: TrainerImage, store: StoreSettings, *, deadline_s: int) -> TrainerResult:
        entrypoint = self.project_root / image.entrypoint
        if not entrypoint.is_file():
            raise TrainerFailed(f"trainer entrypoint {image.entrypoint} for {job.algorithm!r} does not exist")
        command = self.command(job, entrypoint)
        with tempfile.TemporaryDirectory(prefix="trainyard-scratch-") as scratch:
            env = self.environment(job, store, scratch)
            # torchrun starts its own worker processes: a warm interpreter stands in for one plain process only.
            warm = None if job.shape.distributed else warm_interpreters.take(WARM_PURPOSE, self.python, self.project_root)
            how = "a warm interpreter" if warm else f"torchrun ({job.shape})" if job.shape.distributed else "a new process"
            log.info("running trainer %s in %s", job.algorithm, how)
            outcome = run_trainer_process(
                command,
                env=env,
                cwd=scratch,
                deadline_s=deadline_s,
                secrets=trainer_secret_env(store),
                started=warm.start(entrypoint, env, scratch) if warm else None,
            )
        return trainer_result(job, outcome, store, f" (deadline {deadline_s}s)" if outcome.timed_out else "")
