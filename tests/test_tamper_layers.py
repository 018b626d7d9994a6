"""Which layer catches tampering. Each test bypasses the layers before it, so each layer is
shown to catch, on its own, what gets past the ones in front of it:

1. the store: every read checks the object's bytes against the sha256 recorded at write time;
2. materialize_snapshot: the downloaded files re-hashed against the snapshot manifest;
3. the trainer: the snapshot manifest re-hashed against the dataset hash it was asked to train on;
4. registration: the stored weights' sha256 against the one the trainer reported.
"""
from __future__ import annotations

import pytest

from steps.data.snapshot import (
    Snapshot,
    SnapshotMismatch,
    blob_key,
    dataset_hash_of,
    load_snapshot,
    materialize_snapshot,
    snapshot_key,
)
from steps.executors.base import TrainerFailed
from steps.executors.subprocess_executor import SubprocessExecutor
from steps.lifecycle.model_registry import read_alias, registered_versions
from steps.lifecycle.train import run_training
from steps.store import IntegrityError, StoreSettings
from tests.pipeline_fixtures import make_plan, snapshot_of
from tests.registration_fixtures import register, trainer_outputs


def test_layer_1_the_store_refuses_bytes_changed_behind_its_back(local_store, tmp_path):
    snapshot = snapshot_of(local_store, "intents")
    target = snapshot.files[-1]
    # Behind the store: the content object's bytes change, its recorded sha256 does not.
    (local_store.root / ".objects" / target.sha256).write_bytes(b"id,text,label\nx,tampered,0\n")
    with pytest.raises(IntegrityError, match=f"{blob_key(target.sha256)} is corrupt"):
        materialize_snapshot(local_store, snapshot, tmp_path / "out")


def test_layer_2_materialize_refuses_a_blob_the_store_serves_consistently_but_the_snapshot_did_not_hash(
    local_store, tmp_path
):
    snapshot = snapshot_of(local_store, "intents")
    target = snapshot.files[-1]
    # Through the store: the blob key now holds other bytes, recorded with their own sha256,
    # so the store's check passes. Only the re-hash against the snapshot can notice.
    local_store.put_bytes(blob_key(target.sha256), b"id,text,label\nx,tampered,0\n")
    assert local_store.get_bytes(blob_key(target.sha256)) == b"id,text,label\nx,tampered,0\n"
    with pytest.raises(SnapshotMismatch, match=f"{target.path} has sha256 .*, expected {target.sha256[:12]}"):
        materialize_snapshot(local_store, snapshot, tmp_path / "out")


def test_layer_3_the_trainer_refuses_a_snapshot_manifest_that_does_not_hash_to_its_dataset_hash(
    local_store, store_root, tmp_path
):
    snapshot = snapshot_of(local_store, "intents")
    # A genuine, self-consistent snapshot of other data (one file fewer: its blobs exist and
    # verify, its dataset_hash is its own) stored under the dataset hash the run was planned with.
    files = snapshot.files[:-1]
    swapped = Snapshot.model_validate({**snapshot.model_dump(), "files": files, "dataset_hash": dataset_hash_of(files)})
    local_store.put_bytes(snapshot_key("intents", snapshot.dataset_hash), swapped.model_dump_json().encode())
    materialize_snapshot(local_store, swapped, tmp_path / "out")  # layers 1 and 2 have nothing to say
    settings = StoreSettings(backend="local", root=str(store_root))
    with pytest.raises(TrainerFailed, match="does not hash to its name"):
        run_training(make_plan("tamper-3", dataset="intents", algorithm="intent-classification"),
                     snapshot.dataset_hash, SubprocessExecutor(), settings)
    with pytest.raises(SnapshotMismatch):
        load_snapshot(local_store, "intents", snapshot.dataset_hash)


def test_layer_4_registration_refuses_weights_other_than_the_trainer_reported(local_store):
    snapshot = snapshot_of(local_store)
    plan = make_plan("tamper-4")
    result = trainer_outputs(local_store, plan, b"the weights the trainer wrote")
    # Through the store, after the trainer reported its sha256: every store read verifies.
    local_store.put_bytes(result.weights_key, b"other weights")
    with pytest.raises(IntegrityError, match="differs from the trainer's report"):
        register(local_store, plan, snapshot, result)
    assert registered_versions(local_store, plan.model_name) == []  # no manifest: nothing registered
    assert read_alias(local_store, plan.model_name) is None
