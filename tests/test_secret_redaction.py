"""A trainer that prints its own store credentials: the executors redact them everywhere the
trainer's output goes (the failure message, the stored trainer.log, the task log).

Each check first proves it looked at the trainer's output at all (a known line is there),
so "the secret is absent" cannot pass on an empty capture.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from steps.executors.base import TrainerFailed
from steps.executors.subprocess_executor import SubprocessExecutor
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.train import training_job
from steps.store import StoreSettings, open_store
from tests.minio_server import unique_bucket_prefix
from tests.pipeline_fixtures import make_plan

# Prints both credentials the executor hands it, then fails so the failure message carries the tail.
LEAKY_TRAINER = """\
import os, sys
print("leaky trainer starting", flush=True)
print("my secret key is " + os.environ["TRAINYARD_MINIO_SECRET_KEY"], flush=True)
print("my access key is " + os.environ["TRAINYARD_MINIO_ACCESS_KEY"], flush=True)
sys.exit(1)
"""


def write_leaky_trainer(root: Path, algorithm_dir: str = "leaky") -> Path:
    script = root / "images" / algorithm_dir / "train.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(LEAKY_TRAINER)
    return script


def assert_redacted(text: str, settings: StoreSettings, where: str) -> None:
    assert "leaky trainer starting" in text, f"{where}: the trainer's output was not captured at all"
    assert "my secret key is ***" in text and "my access key is ***" in text, f"{where}: the leaking lines are missing"
    assert settings.minio_secret_key not in text and settings.minio_access_key not in text, f"{where} leaks a secret"


def redacted_everywhere(run, settings: StoreSettings, caplog) -> None:
    """Run the leaky trainer through `run` and check every place its output lands."""
    job = training_job(make_plan("leaky"), "0" * 64)
    caplog.set_level(logging.INFO, logger="steps.executors.trainer_process")
    with pytest.raises(TrainerFailed) as failed:
        run(job)
    assert_redacted(str(failed.value), settings, "the failure message")
    assert_redacted(open_store(settings).get_bytes(job.outputs.trainer_log).decode(), settings, "the stored trainer.log")
    assert_redacted(caplog.text, settings, "the task log")


@pytest.mark.minio
def test_subprocess_executor_redacts_credentials_the_trainer_prints(minio_server, tmp_path, caplog):
    settings = minio_server.settings(bucket_prefix=unique_bucket_prefix())
    write_leaky_trainer(tmp_path)
    image = TrainerImage(algorithm="digits-cnn", image_reference="x", code_sha256="0" * 64,
                         entrypoint="images/leaky/train.py")
    executor = SubprocessExecutor(python=sys.executable, project_root=tmp_path)
    redacted_everywhere(lambda job: executor.run(job, image, settings, deadline_s=300), settings, caplog)
