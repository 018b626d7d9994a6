"""Stored content is never silently rewritten: a write that meets corrupt shared content refuses
loudly, a check names what is wrong, and a repair can only put back the original bytes."""
from __future__ import annotations

import io

import pytest

from steps.hashing import sha256_bytes
from steps.store import IntegrityError
from steps.store.integrity import check_object, restore_object

WEIGHTS = b"the registered weights"


def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


def content_file(store, data: bytes):
    return store.root / ".objects" / sha256_bytes(data)


def test_a_write_of_content_whose_stored_copy_is_corrupt_refuses_and_heals_nothing(local_store):
    local_store.put_bytes("models/m/versions/1/weights.safetensors", WEIGHTS)
    shared = content_file(local_store, WEIGHTS)
    flip_a_byte(shared)
    tampered = shared.read_bytes()
    with pytest.raises(IntegrityError, match="trainyard verify") as err:
        local_store.put_bytes("runs/r/train/weights.safetensors", WEIGHTS)
    assert "runs/r/train/weights.safetensors" in str(err.value) and "corrupt" in str(err.value)
    assert shared.read_bytes() == tampered  # still corrupt: the evidence is kept, not overwritten
    assert not local_store.exists("runs/r/train/weights.safetensors")


def test_a_write_of_content_already_stored_intact_shares_it(local_store, tmp_path):
    first = local_store.put_bytes("models/m/versions/1/weights.safetensors", WEIGHTS)
    source = tmp_path / "w"
    source.write_bytes(WEIGHTS)
    second = local_store.put_file("models/m/versions/2/weights.safetensors", source)
    assert first.sha256 == second.sha256
    assert local_store.get_bytes("models/m/versions/2/weights.safetensors") == WEIGHTS
    assert [p.name for p in (local_store.root / ".objects").iterdir()] == [first.sha256]  # no temp files left


def test_check_object_names_corrupt_missing_and_mispinned_objects(local_store):
    key = "models/m/versions/1/weights.safetensors"
    stored = local_store.put_bytes(key, WEIGHTS)
    assert check_object(local_store, key, stored.sha256).ok
    mispinned = check_object(local_store, key, "f" * 64)
    assert not mispinned.ok and "manifest pins ffffffffffff" in mispinned.problem
    flip_a_byte(content_file(local_store, WEIGHTS))
    corrupt = check_object(local_store, key, stored.sha256)
    assert not corrupt.ok and corrupt.actual_sha256 not in (None, stored.sha256)
    assert f"not the recorded {stored.sha256[:12]}" in corrupt.problem
    missing = check_object(local_store, "models/m/versions/1/metrics.jsonl")
    assert not missing.ok and missing.problem == "missing"


def test_restore_puts_back_only_bytes_that_hash_to_the_recorded_sha256(local_store, tmp_path):
    key = "datasets/blobs/sha256/aa/blob"
    local_store.put_bytes(key, WEIGHTS)
    flip_a_byte(content_file(local_store, WEIGHTS))
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"something else entirely")
    with pytest.raises(IntegrityError, match="cannot restore"):
        restore_object(local_store, key, wrong)
    assert not check_object(local_store, key).ok
    right = tmp_path / "right"
    right.write_bytes(WEIGHTS)
    restore_object(local_store, key, right)
    assert local_store.get_bytes(key) == WEIGHTS


@pytest.mark.minio
def test_check_and_restore_on_minio(minio_store, tmp_path):
    key = "datasets/blobs/sha256/aa/blob"
    original = minio_store.put_bytes(key, WEIGHTS)
    bucket = minio_store.bucket_name("datasets")
    minio_store._client.put_object(  # behind the store's back: same recorded sha256, other bytes
        bucket, "blobs/sha256/aa/blob", io.BytesIO(b"evil"), 4, metadata={"sha256": original.sha256}
    )
    corrupt = check_object(minio_store, key, original.sha256)
    assert not corrupt.ok and corrupt.actual_sha256 == sha256_bytes(b"evil")
    right = tmp_path / "right"
    right.write_bytes(WEIGHTS)
    restore_object(minio_store, key, right)
    assert check_object(minio_store, key, original.sha256).ok and minio_store.get_bytes(key) == WEIGHTS
