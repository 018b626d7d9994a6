"""Checkpoint mechanics in-process, on a small digits CNN with dropout (so training draws from the global
RNG): a resumed run computes the weights an uninterrupted one does, whatever hooks drew in between; a
corrupt, foreign or unsafe checkpoint is reported and skipped; the newest K stay. (The kill -9 proofs,
through real executors and Airflow's retries, are in test_resume_after_kill.py.)"""
from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest

from steps.store.run_layout import RunLayout
from steps.training.checkpoint import STATE_FILE, CheckpointHook, CheckpointStore
from steps.training.contract import StopRecord
from steps.training.determinism import configure_determinism
from steps.training.loop import fit
from steps.training.training_state import new_training_state
from tests.conftest import PROJECT_ROOT

HP = {"epochs": 4, "learning_rate": 0.01, "batch_size": 32, "channels": 4, "hidden": 16}
FINGERPRINT = "f" * 64


def _digits_cnn():
    spec = importlib.util.spec_from_file_location("digits_cnn_train", PROJECT_ROOT / "images" / "digits-cnn" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DigitsCNN()


@pytest.fixture(scope="module")
def digits():
    import torch
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data[:320] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    return x, torch.tensor(data.target[:320], dtype=torch.long)


class StopAfter:
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, state, record):
        return StopRecord(status="interrupted", reason="test", after_epoch=record.epoch) if record.epoch == self.epoch else None


def _checkpoints(store, tmp_path, run_id="run-a", fingerprint=FINGERPRINT, keep=2, reports=None):
    return CheckpointStore(store, RunLayout(run_id).train, run_id, fingerprint, tmp_path, keep=keep,
                           report=(reports.append if reports is not None else print))


def _fresh(seed=3):
    """What a new trainer process does: seed everything, build the model."""
    from torch import nn

    def make():
        configure_determinism(seed, 1, "cpu")
        model = nn.Sequential(_digits_cnn().build_model(HP, 10), nn.Dropout(0.3))
        return new_training_state(model, HP, seed=seed, device="cpu")
    return make


def _weights(state):
    import torch

    return torch.cat([t.flatten() for t in state.model.state_dict().values()])


class DrawsRandomNumbers:
    """A hook that draws from every global RNG, as a careless monitoring hook might."""

    def on_epoch_end(self, state, record):
        import torch

        random.random(), np.random.rand(7), torch.rand(11)


def _run(digits, checkpoints=None, *, stop_after=None, every=1, resume=False, noisy=False):
    x, y = digits
    if resume:
        state, resumed = checkpoints.resume(_fresh())
    else:
        state, resumed = _fresh()(), None
    checkpointing = CheckpointHook(checkpoints, every, HP["epochs"]) if checkpoints is not None else None
    hooks = [checkpointing] if checkpointing else []
    hooks += [StopAfter(stop_after)] if stop_after else []
    hooks += [DrawsRandomNumbers()] if noisy else []
    outcome = fit(state, x, y, epochs=HP["epochs"], batch_size=HP["batch_size"], hooks=hooks)
    if checkpointing:
        checkpointing.wait()  # the upload of the last checkpoint runs in the background
    return state, resumed, outcome


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(digits, local_store, tmp_path):
    import torch

    plain, _, _ = _run(digits)  # no checkpoints at all
    checkpointed, _, _ = _run(digits, _checkpoints(local_store, tmp_path, "run-b"), noisy=True)
    assert torch.equal(_weights(plain), _weights(checkpointed))  # checkpoints and hooks never change the weights

    interrupted, _, outcome = _run(digits, _checkpoints(local_store, tmp_path), stop_after=2)
    assert outcome.epochs_completed == 2 and outcome.stopped.status == "interrupted"
    resumed_state, resumed, outcome = _run(digits, _checkpoints(local_store, tmp_path), resume=True)

    assert resumed.from_epoch == 3 and resumed.unusable_checkpoints == []
    assert outcome.epochs_completed == 4
    assert torch.equal(_weights(plain), _weights(resumed_state))
    assert [r.epoch for r in resumed_state.history] == [1, 2, 3, 4]
    assert [r.train_loss for r in resumed_state.history] == [r.train_loss for r in plain.history]


def test_a_corrupt_newest_checkpoint_is_reported_and_the_one_before_it_is_used(digits, local_store, tmp_path):
    import torch

    plain, _, _ = _run(digits)
    _run(digits, _checkpoints(local_store, tmp_path), stop_after=3)
    newest_state = local_store.stat(RunLayout("run-a").train.checkpoint_file(3, STATE_FILE))
    (local_store.root / ".objects" / newest_state.sha256).write_bytes(b"not what was stored")

    reports = []
    state, resumed, _ = _run(digits, _checkpoints(local_store, tmp_path, reports=reports), resume=True)

    assert resumed.from_epoch == 3  # from epoch 2's checkpoint
    assert len(resumed.unusable_checkpoints) == 1 and "epoch 3" in resumed.unusable_checkpoints[0]
    assert "corrupt" in resumed.unusable_checkpoints[0]
    assert any("checkpoint of epoch 3 is unusable" in line and "corrupt" in line for line in reports)
    assert torch.equal(_weights(plain), _weights(state))


@pytest.mark.parametrize("other", ["job", "run"])
def test_a_checkpoint_made_for_another_job_or_run_is_never_resumed_from(other, digits, local_store, tmp_path):
    """Another job: other data, seeds or hyperparameters. Another run: a replay or `trainyard reproduce`
    that found the original run's checkpoints under its prefix would still not take them."""
    writer = _checkpoints(local_store, tmp_path, fingerprint="e" * 64) if other == "job" else _checkpoints(local_store, tmp_path)
    _run(digits, writer, stop_after=2)
    reader = _checkpoints(local_store, tmp_path, reports=(reports := []))
    if other == "run":
        reader.run_id = "a-replay-of-run-a"
    state, resumed, _ = _run(digits, reader, resume=True)
    assert resumed is None and state.history[0].epoch == 1
    assert any("made for another job" in line for line in reports)


def test_a_checkpoint_that_would_unpickle_arbitrary_objects_is_refused(digits, local_store, tmp_path):
    import torch

    from steps.training.checkpoint import CheckpointFile, CheckpointMarker

    _run(digits, _checkpoints(local_store, tmp_path), stop_after=1)
    outputs = RunLayout("run-a").train
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": StopAfter(1)}, evil)  # an instance of a class, not plain data
    stored = local_store.put_file(outputs.checkpoint_file(1, STATE_FILE), evil)
    marker = CheckpointMarker.model_validate_json(local_store.get_bytes(outputs.checkpoint_marker(1)))
    files = [CheckpointFile(name=STATE_FILE, sha256=stored.sha256, size_bytes=stored.size_bytes)]
    local_store.put_bytes(outputs.checkpoint_marker(1), marker.model_copy(update={"files": files}).model_dump_json().encode())

    reports = []
    _, resumed, _ = _run(digits, _checkpoints(local_store, tmp_path, reports=reports), resume=True)
    assert resumed is None
    assert any("does not load as plain tensors" in line for line in reports), reports


def test_only_the_newest_checkpoints_are_kept(digits, local_store, tmp_path):
    _run(digits, _checkpoints(local_store, tmp_path, keep=2))
    outputs = RunLayout("run-a").train
    assert _checkpoints(local_store, tmp_path).epochs() == [4, 3]
    assert not [k for k in local_store.list_keys(outputs.checkpoints_prefix) if "/epoch-0001/" in k or "/epoch-0002/" in k]


def test_a_checkpoint_that_cannot_be_stored_fails_training_instead_of_being_skipped(digits, tmp_path):
    """The upload runs in the background; its failure still surfaces, at the next checkpoint."""
    from steps.store.local import LocalStore

    store = LocalStore(tmp_path / "store")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / ".objects").write_text("a file where the store keeps its objects")  # every write fails
    with pytest.raises(OSError):
        _run(digits, _checkpoints(store, tmp_path))
