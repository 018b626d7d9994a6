"""The local store keeps the same integrity promises as MinIO (tests/test_minio_store.py):
tampered bytes fail loudly, an object without a recorded sha256 is not trusted, and a write
that dies half-way leaves nothing a reader could see."""
from __future__ import annotations

import os

import pytest

from steps.hashing import sha256_bytes
from steps.store import IntegrityError, ObjectNotFound


def test_tampered_object_fails_loudly_on_read(local_store, tmp_path):
    key = "models/digits/versions/3/weights.safetensors"
    original = local_store.put_bytes(key, b"real weights")
    (local_store.root / ".objects" / original.sha256).write_bytes(b"evil weights")  # behind the store's back

    with pytest.raises(IntegrityError, match=key):
        local_store.get_bytes(key)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError, match=key):
        local_store.get_file(key, out / "weights.safetensors")
    assert list(out.iterdir()) == []  # no half-written temp file left behind


def test_object_without_recorded_sha256_is_not_trusted(local_store):
    local_store.put_bytes("runs/r1/seed.json", b"{}")
    (local_store.root / "runs" / "r1" / "foreign.json").write_bytes(b"{}")  # not written through the store
    with pytest.raises(IntegrityError, match="runs/r1/foreign.json is not a store object"):
        local_store.get_bytes("runs/r1/foreign.json")
    with pytest.raises(IntegrityError, match="runs/r1/foreign.json is not a store object"):
        local_store.stat("runs/r1/foreign.json")


def test_a_write_that_dies_half_way_leaves_no_object_and_no_temp_file(local_store, tmp_path):
    key = "models/digits/versions/4/weights.safetensors"
    source = tmp_path / "weights.bin"
    source.write_bytes(b"x" * 3_000_000)

    class DiskFull(OSError):
        pass

    written = {"bytes": 0}

    real_fdopen = os.fdopen

    def failing_fdopen(fd, mode="r", *args, **kwargs):
        handle = real_fdopen(fd, mode, *args, **kwargs)
        if "w" in mode:
            real_write = handle.write

            def write(chunk):
                written["bytes"] += len(chunk)
                if written["bytes"] > 1_000_000:
                    raise DiskFull("No space left on device")
                return real_write(chunk)

            handle.write = write
        return handle

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("steps.store.local.os.fdopen", failing_fdopen)
        with pytest.raises(DiskFull):
            local_store.put_file(key, source)
    assert not local_store.exists(key)
    with pytest.raises(ObjectNotFound):
        local_store.get_bytes(key)
    assert [p.name for p in (local_store.root / ".objects").iterdir()] == []  # the temp file is gone too


def test_a_key_whose_content_went_missing_is_reported_not_read_as_empty(local_store):
    stored = local_store.put_bytes("runs/r1/result.json", b'{"ok": true}')
    (local_store.root / ".objects" / stored.sha256).unlink()
    with pytest.raises(IntegrityError, match=f"runs/r1/result.json points at missing content {stored.sha256[:12]}"):
        local_store.get_bytes("runs/r1/result.json")
    assert sha256_bytes(b'{"ok": true}') == stored.sha256
