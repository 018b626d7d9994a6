"""Failing fast: a diverged loss stops the trainer at once and the train task is not retried; a trainer
that stops making progress — waiting with the GIL released, or stuck in native code holding it — is
killed by its own watchdog and reported as stalled (retryable)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from steps.executors.base import TrainerFailed
from steps.executors.subprocess_executor import SubprocessExecutor
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.run_failure import read_failures
from steps.lifecycle.train import training_job
from steps.store import StoreSettings
from tests.conftest import PROJECT_ROOT
from tests.pipeline_fixtures import make_plan, snapshot_of

STALL_TIMEOUT_S = 6

# A digits-cnn trainer whose model hangs in its 5th forward pass (in epoch 1), either waiting with
# the GIL released (as on I/O, a lock or a collective) or inside native code that holds it.
HANGING_TRAINER = '''
import ctypes, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {root!r} + "/images/digits-cnn")
from steps.training.runtime import run_trainer
from train import DigitsCNN

class Hangs(DigitsCNN):
    def build_model(self, hyperparameters, n_classes):
        import torch
        model = super().build_model(hyperparameters, n_classes)
        calls = [0]
        def hang_on_fifth(module, inputs):
            calls[0] += 1
            if calls[0] == 5:
                print("hanging now", flush=True)
                {hang}
        model.register_forward_pre_hook(hang_on_fifth)
        return model

sys.exit(run_trainer(Hangs()))
'''
HANGS = {
    "gil-released": "time.sleep(600)",
    "native-holding-gil": "ctypes.PyDLL(None).sleep(600)",  # PyDLL keeps the GIL during the call
}


@pytest.mark.slow
@pytest.mark.parametrize("hang", sorted(HANGS))
def test_a_trainer_that_stops_making_progress_is_stopped_and_reported_stalled(hang, local_store, store_root, tmp_path):
    from steps.lifecycle.run_failure import failure_from_exception

    script = tmp_path / "images" / "hangs" / "train.py"
    script.parent.mkdir(parents=True)
    script.write_text(HANGING_TRAINER.format(root=str(PROJECT_ROOT), hang=HANGS[hang]))
    snapshot = snapshot_of(local_store)
    job = training_job(make_plan(f"stall-{hang}", stall_timeout_s=STALL_TIMEOUT_S), snapshot.dataset_hash)
    image = TrainerImage(algorithm="digits-cnn", image_reference="x", code_sha256="0" * 64, entrypoint="images/hangs/train.py")
    settings = StoreSettings(backend="local", root=str(store_root))

    started = time.monotonic()
    with pytest.raises(TrainerFailed) as failed:
        SubprocessExecutor(project_root=tmp_path).run(job, image, settings, deadline_s=600)
    assert time.monotonic() - started < 300  # the watchdog, not the 600 s hang or the deadline, ended it

    message = str(failed.value)
    assert "in hang_on_fifth" in message  # the log tail holds the stacks: where it hung
    assert failed.value.failure_kind == "stalled"
    first_line = message.splitlines()[0]
    assert first_line.startswith("trainer 'digits-cnn' stalled: no progress for")
    if hang == "gil-released":
        assert f"stall_timeout_s={STALL_TIMEOUT_S}" in first_line and "training epoch 1, after batch 4" in first_line
    else:
        assert "stuck in native code" in first_line
    record = failure_from_exception("r", "train", failed.value)
    assert record.kind == "stalled" and record.retryable


@pytest.fixture
def sgd_intents_catalog(tmp_path, monkeypatch) -> Path:
    """The registry with intent-classification trained by plain SGD (with momentum), which a huge
    learning rate drives to a non-finite loss within a few batches. Adam, the default, bounds each
    step by the learning rate, so on these small models it does not diverge even at the Params maximum."""
    registry = yaml.safe_load((PROJECT_ROOT / "config" / "algorithms.yaml").read_text())
    registry["intent-classification"]["defaults"]["optimizer"] = "sgd"
    path = tmp_path / "algorithms.yaml"
    path.write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("TRAINYARD_ALGORITHMS_CATALOG", str(path))
    monkeypatch.setenv("TRAINYARD_RETRY_DELAY_S", "0")
    return path


@pytest.mark.slow
def test_a_diverging_run_fails_fast_without_retries_and_registers_nothing(
    airflow_db, store_root, local_store, sgd_intents_catalog
):
    from steps.lifecycle.model_registry import list_models
    from steps.lifecycle.plan import run_key_for
    from trainyard.local_airflow import run_dag

    run = run_dag(
        "training_pipeline",
        {"dataset": "intents", "algorithm": "intent-classification", "learning_rate": 10.0, "epochs": 6, "batch_size": 8},
    )

    assert run.state == "failed" and run.failed_tasks == ["train"]
    assert run.upstream_failed_tasks == ["evaluate", "register"]
    failures = read_failures(local_store, run_key_for(run.dag_id, run.run_id))
    train = failures["train"]
    assert train.kind == "diverged" and not train.retryable
    assert train.try_number == 1  # the only try: a retry would diverge the same way
    assert "training loss is nan" in train.reason or "training loss is inf" in train.reason
    assert "at epoch " in train.reason and ", batch " in train.reason and "(learning rate 10)" in train.reason
    assert list_models(local_store) == []
