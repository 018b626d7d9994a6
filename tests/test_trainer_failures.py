"""A failing trainer surfaces its last log lines; a tampered snapshot is refused by the trainer."""
from __future__ import annotations

import pytest

from steps.data.snapshot import blob_key
from steps.executors.base import TrainerFailed
from steps.executors.subprocess_executor import SubprocessExecutor
from steps.lifecycle.train import run_training
from steps.store import StoreSettings
from tests.pipeline_fixtures import make_plan, snapshot_of


def test_trainer_exit_nonzero_shows_its_last_log_lines(local_store, store_root):
    settings = StoreSettings(backend="local", root=str(store_root))
    plan = make_plan("fail-1")
    with pytest.raises(TrainerFailed) as err:
        run_training(plan, "0" * 64, SubprocessExecutor(), settings)  # no such snapshot
    message = str(err.value)
    assert "exited with code 1" in message and "last log lines" in message
    assert "trainyard-trainer: error: ObjectNotFound" in message
    assert not list(local_store.list_keys("models/"))


def test_trainer_refuses_a_snapshot_whose_files_changed(local_store, store_root):
    settings = StoreSettings(backend="local", root=str(store_root))
    snapshot = snapshot_of(local_store, "intents")
    (local_store.root / blob_key(snapshot.files[-1].sha256)).write_bytes(b"id,text,label\nx,tampered,0\n")
    with pytest.raises(TrainerFailed, match="IntegrityError|corrupt"):
        run_training(make_plan("fail-2", dataset="intents", algorithm="intent-classification"),
                     snapshot.dataset_hash, SubprocessExecutor(), settings)


def test_trainer_contract_round_trips_through_env():
    from steps.lifecycle.train import training_job
    from steps.training.contract import TrainingJob

    job = training_job(make_plan("env-1"), "a" * 64)
    env = job.to_env()
    assert env["TRAINYARD_SEED"] == "7" and env["TRAINYARD_DATASET_HASH"] == "a" * 64
    assert TrainingJob.from_env(env) == job
    with pytest.raises(ValueError, match="missing TRAINYARD_SEED"):
        TrainingJob.from_env({k: v for k, v in env.items() if k != "TRAINYARD_SEED"})


def test_a_hung_trainer_is_killed_at_its_deadline_with_its_children(local_store, store_root, tmp_path):
    """The deadline kills the trainer's whole process group: a child holding the log pipe
    open must not keep the task waiting."""
    import time

    from steps.images.trainer_image import TrainerImage
    from steps.lifecycle.train import training_job

    script = tmp_path / "images" / "hangs" / "train.py"
    script.parent.mkdir(parents=True)
    script.write_text(
        "import subprocess, sys, time\n"
        "subprocess.Popen(['sleep', '120'])  # inherits stdout\n"
        "print('started, now hanging', flush=True)\n"
        "time.sleep(120)\n"
    )
    settings = StoreSettings(backend="local", root=str(store_root))
    image = TrainerImage(algorithm="digits-cnn", image_reference="x", code_sha256="0" * 64, entrypoint="images/hangs/train.py")
    started = time.monotonic()
    with pytest.raises(TrainerFailed, match="exceeded its deadline") as err:
        SubprocessExecutor(project_root=tmp_path).run(training_job(make_plan("hang"), "0" * 64), image, settings, deadline_s=2)
    assert "started, now hanging" in str(err.value)
    assert time.monotonic() - started < 60  # not the 120 s the child would have held the pipe
