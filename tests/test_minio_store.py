"""MinioStore against a real MinIO server built from source (tests/minio_server.py)."""
from __future__ import annotations

import io
import json
import logging
import os
import tracemalloc
from pathlib import Path

import pytest
import urllib3

from steps.hashing import sha256_bytes, sha256_file
from steps.store import ArtifactStore, StoreSettings, open_store
from steps.store.errors import (
    IntegrityError,
    ObjectExists,
    ObjectNotFound,
    StoreAuthError,
    StoreError,
    StoreUnavailable,
)
from steps.store.minio_store import SHA256_HEADER, MinioStore
from tests.minio_server import MinioServer, unique_bucket_prefix
from tests.ports import unused_port

pytestmark = pytest.mark.minio

MiB = 1024 * 1024
PART_SIZE_BYTES = 5 * MiB


def write_random(path: Path, size_bytes: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        remaining = size_bytes
        while remaining:
            chunk = os.urandom(min(remaining, MiB))
            out.write(chunk)
            remaining -= len(chunk)
    return path


def small_part_store(server: MinioServer, **kwargs) -> MinioStore:
    settings_overrides = {"bucket_prefix": unique_bucket_prefix()}
    if "object_lock_days" in kwargs:
        settings_overrides["object_lock_days"] = kwargs.pop("object_lock_days")
    return MinioStore(server.settings(**settings_overrides), part_size_bytes=PART_SIZE_BYTES, **kwargs)


def test_minio_store_satisfies_the_store_protocol(minio_store):
    assert isinstance(minio_store, ArtifactStore)
    assert minio_store.location.startswith("http://127.0.0.1:")


def test_environment_selects_the_minio_backend(minio_server):
    settings = minio_server.settings(bucket_prefix=unique_bucket_prefix())
    env = {**settings.public_env(), **settings.secret_env()}
    store = open_store(StoreSettings.from_env(env))
    assert isinstance(store, MinioStore)
    store.put_bytes("runs/r1/hello.txt", b"hi")
    assert store.get_bytes("runs/r1/hello.txt") == b"hi"


def test_bytes_and_files_round_trip_with_their_sha256(minio_store, tmp_path):
    stored = minio_store.put_bytes("runs/r1/report.json", b'{"ok":true}')
    assert stored.sha256 == sha256_bytes(b'{"ok":true}')
    assert minio_store.get_bytes("runs/r1/report.json") == b'{"ok":true}'

    source = write_random(tmp_path / "data.bin", 300_000)
    put = minio_store.put_file("datasets/blobs/sha256/ab/x", source)
    got = minio_store.get_file("datasets/blobs/sha256/ab/x", tmp_path / "out" / "data.bin")
    assert (tmp_path / "out" / "data.bin").read_bytes() == source.read_bytes()
    assert put == got == minio_store.stat("datasets/blobs/sha256/ab/x")
    assert got.size_bytes == 300_000 and got.sha256 == sha256_file(source)


def test_empty_file_round_trips(minio_store, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    minio_store.put_file("runs/r1/empty", empty)
    assert minio_store.get_bytes("runs/r1/empty") == b""
    assert minio_store.stat("runs/r1/empty").size_bytes == 0


def test_missing_object_reads_as_absent_or_not_found(minio_store, tmp_path):
    assert minio_store.stat("runs/nope/x.json") is None
    assert not minio_store.exists("runs/nope/x.json")
    with pytest.raises(ObjectNotFound, match="runs/nope/x.json"):
        minio_store.get_bytes("runs/nope/x.json")
    with pytest.raises(ObjectNotFound, match="runs/nope/x.json"):
        minio_store.get_file("runs/nope/x.json", tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_each_area_is_its_own_bucket_and_sha256_is_in_object_metadata(minio_store, minio_server):
    minio_store.put_bytes("datasets/snapshots/digits/abc.json", b"snap")
    minio_store.put_bytes("runs/r7/eval.json", b"eval")
    minio_store.put_bytes("models/digits/aliases/champion.json", b"alias")

    raw = minio_store._client
    prefix = minio_store.bucket_prefix
    for bucket, name, content in [
        (f"{prefix}-datasets", "snapshots/digits/abc.json", b"snap"),
        (f"{prefix}-runs", "r7/eval.json", b"eval"),
        (f"{prefix}-models", "digits/aliases/champion.json", b"alias"),
    ]:
        info = raw.stat_object(bucket, name)
        assert info.metadata[SHA256_HEADER] == sha256_bytes(content)


def test_models_bucket_has_versioning_enabled(minio_store):
    minio_store.put_bytes("models/digits/versions/1/manifest.json", b"{}")
    versioning = minio_store._client.get_bucket_versioning(minio_store.bucket_name("models"))
    assert versioning.status == "Enabled"


def test_tampered_object_fails_loudly_on_read(minio_store, tmp_path):
    key = "models/digits/versions/3/weights.safetensors"
    original = minio_store.put_bytes(key, b"real weights")
    # Behind the store's back: same recorded sha256, different bytes.
    bucket, name = minio_store.bucket_name("models"), "digits/versions/3/weights.safetensors"
    minio_store._client.put_object(
        bucket, name, io.BytesIO(b"evil weights"), len(b"evil weights"), metadata={"sha256": original.sha256}
    )

    with pytest.raises(IntegrityError, match=key):
        minio_store.get_bytes(key)
    dest = tmp_path / "weights.safetensors"
    with pytest.raises(IntegrityError, match=key):
        minio_store.get_file(key, dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []  # no half-written temp file left behind


def test_object_without_recorded_sha256_is_not_trusted(minio_store):
    minio_store.put_bytes("runs/r1/seed.json", b"{}")  # creates the bucket
    minio_store._client.put_object(minio_store.bucket_name("runs"), "r1/foreign.json", io.BytesIO(b"{}"), 2)
    with pytest.raises(IntegrityError, match="runs/r1/foreign.json has no recorded sha256"):
        minio_store.get_bytes("runs/r1/foreign.json")


def test_file_larger_than_part_size_goes_up_multipart_and_downloads_intact(minio_server, tmp_path):
    store = small_part_store(minio_server)
    source = write_random(tmp_path / "big.bin", 12 * MiB + 123)
    stored = store.put_file("datasets/blobs/sha256/aa/big", source)

    info = store._client.stat_object(store.bucket_name("datasets"), "blobs/sha256/aa/big")
    assert info.etag.endswith("-3"), "a 12 MiB file with 5 MiB parts is a 3-part multipart upload"
    assert info.metadata[SHA256_HEADER] == sha256_file(source) == stored.sha256

    got = store.get_file("datasets/blobs/sha256/aa/big", tmp_path / "back.bin")
    assert sha256_file(tmp_path / "back.bin") == stored.sha256
    assert got.size_bytes == 12 * MiB + 123


def test_large_files_stream_instead_of_being_read_whole_into_memory(minio_server, tmp_path):
    store = small_part_store(minio_server, parallel_parts=2, max_buffered_bytes=2 * PART_SIZE_BYTES)
    source = write_random(tmp_path / "big.bin", 24 * MiB)
    tracemalloc.start()
    try:
        store.put_file("datasets/blobs/sha256/bb/big", source)
        _, upload_peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.get_file("datasets/blobs/sha256/bb/big", tmp_path / "back.bin")
        _, download_peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Two 5 MiB parts in flight (plus slack), never the 24 MiB file.
    assert upload_peak_bytes < 3 * PART_SIZE_BYTES
    assert download_peak_bytes < 4 * MiB
    assert sha256_file(tmp_path / "back.bin") == sha256_file(source)


def test_if_absent_refuses_to_overwrite_small_and_multipart_objects(minio_server, tmp_path):
    store = small_part_store(minio_server)
    store.put_bytes("runs/r1/result.json", b"first", if_absent=True)
    with pytest.raises(ObjectExists, match="runs/r1/result.json"):
        store.put_bytes("runs/r1/result.json", b"second", if_absent=True)
    assert store.get_bytes("runs/r1/result.json") == b"first"

    big_a = write_random(tmp_path / "a.bin", 6 * MiB)
    big_b = write_random(tmp_path / "b.bin", 6 * MiB)
    store.put_file("models/m/versions/1/w.bin", big_a, if_absent=True)
    with pytest.raises(ObjectExists):
        store.put_file("models/m/versions/1/w.bin", big_b, if_absent=True)
    assert store.stat("models/m/versions/1/w.bin").sha256 == sha256_file(big_a)


def test_if_absent_is_enforced_by_the_server_not_a_prior_check(minio_server, tmp_path):
    """Two writers race: the second one's conditional complete must lose, even past our stat."""
    store = small_part_store(minio_server)
    big_a = write_random(tmp_path / "a.bin", 6 * MiB)
    big_b = write_random(tmp_path / "b.bin", 6 * MiB)
    store.put_file("datasets/blobs/sha256/cc/blob", big_a, if_absent=True)
    bucket, name = store._locate("datasets/blobs/sha256/cc/blob")
    # Call the multipart path directly, as a writer that checked before the first one finished.
    with pytest.raises(ObjectExists):
        store._put_multipart(
            "datasets/blobs/sha256/cc/blob", bucket, name, big_b, sha256_file(big_b), 6 * MiB, True
        )
    with pytest.raises(ObjectExists):
        store._put_single("datasets/blobs/sha256/cc/blob", bucket, name, b"x", sha256_bytes(b"x"), True)
    assert store.stat("datasets/blobs/sha256/cc/blob").sha256 == sha256_file(big_a)


def test_object_lock_refuses_overwrite_and_delete_of_a_registered_version(minio_server, tmp_path):
    store = small_part_store(minio_server, object_lock_days=1)
    manifest_key = "models/digits/versions/1/manifest.json"
    weights_key = "models/digits/versions/1/weights.bin"
    weights = write_random(tmp_path / "w.bin", 6 * MiB)
    store.put_file(weights_key, weights)
    store.put_bytes(manifest_key, b'{"version":1}')

    with pytest.raises(ObjectExists, match="object-lock"):
        store.put_bytes(manifest_key, b'{"version":"forged"}')
    with pytest.raises(ObjectExists):
        store.put_file(weights_key, write_random(tmp_path / "other.bin", 6 * MiB))
    with pytest.raises(StoreAuthError, match="retention"):
        store.delete(manifest_key)
    with pytest.raises(StoreAuthError, match="retention"):
        store.delete(weights_key)

    assert store.get_bytes(manifest_key) == b'{"version":1}'
    assert store.stat(weights_key).sha256 == sha256_file(weights)
    # The server itself holds the line: deleting the exact version is refused too.
    raw, bucket = store._client, store.bucket_name("models")
    version_id = raw.stat_object(bucket, "digits/versions/1/manifest.json").version_id
    with pytest.raises(Exception, match="WORM"):
        raw.remove_object(bucket, "digits/versions/1/manifest.json", version_id=version_id)
    retention = raw.get_object_retention(bucket, "digits/versions/1/manifest.json")
    assert retention.mode == "GOVERNANCE"


def test_object_lock_keeps_aliases_movable_and_registration_retries_idempotent(minio_server):
    store = small_part_store(minio_server, object_lock_days=1)
    store.put_bytes("models/digits/aliases/champion.json", b'{"version":1}')
    store.put_bytes("models/digits/aliases/champion.json", b'{"version":2}')
    assert store.get_bytes("models/digits/aliases/champion.json") == b'{"version":2}'

    # A retried registration rewrites the same bytes: that is not an overwrite.
    first = store.put_bytes("models/digits/versions/2/manifest.json", b'{"version":2}')
    again = store.put_bytes("models/digits/versions/2/manifest.json", b'{"version":2}')
    assert first == again


def test_object_lock_on_a_models_bucket_created_without_it_is_refused_clearly(minio_server):
    prefix = unique_bucket_prefix()
    MinioStore(minio_server.settings(bucket_prefix=prefix)).put_bytes("models/m/aliases/a.json", b"{}")
    locked = MinioStore(minio_server.settings(bucket_prefix=prefix, object_lock_days=1))
    with pytest.raises(StoreError, match=f"bucket {prefix}-models was created without object lock"):
        locked.put_bytes("models/m/versions/1/manifest.json", b"{}")


def test_wrong_credentials_error_names_the_problem_and_never_the_secret(minio_server, caplog):
    wrong_secret = "not-the-secret-" + minio_server.secret_key[:4] + "-zz"
    store = MinioStore(
        minio_server.settings(bucket_prefix=unique_bucket_prefix(), minio_secret_key=wrong_secret),
        retry_attempts=2,
        retry_backoff_s=0.01,
    )
    caplog.set_level(logging.DEBUG)
    for attempt in (
        lambda: store.put_bytes("runs/r1/x.json", b"{}"),
        lambda: store.get_bytes("runs/r1/x.json"),
        lambda: store.stat("runs/r1/x.json"),
    ):
        with pytest.raises(StoreAuthError) as caught:
            attempt()
        message = str(caught.value)
        assert "rejected the credentials" in message
        assert "TRAINYARD_MINIO_SECRET_KEY" in message
        for secret in (wrong_secret, minio_server.secret_key, minio_server.access_key):
            assert secret not in message
            assert secret not in repr(caught.value)
    for secret in (wrong_secret, minio_server.secret_key):
        assert secret not in caplog.text


def test_missing_credentials_fail_before_any_request(minio_server):
    with pytest.raises(StoreAuthError, match="TRAINYARD_MINIO_ACCESS_KEY"):
        MinioStore(minio_server.settings(minio_access_key="", minio_secret_key=""))


def test_missing_bucket_that_may_not_be_created_gives_a_clear_error(minio_server, tmp_path):
    # A user who may read and write objects but not create buckets.
    user, password = "writer-" + unique_bucket_prefix(), "pw-" + os.urandom(8).hex()
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket",
                                            "s3:GetBucketVersioning", "s3:GetBucketLocation"],
             "Resource": ["arn:aws:s3:::*"]},
        ],
    }
    policy_path = tmp_path / "policy.json"
    policy_path.write_text(json.dumps(policy))
    minio_server.mc("admin", "user", "add", "test", user, password)
    minio_server.mc("admin", "policy", "create", "test", user + "-policy", str(policy_path))
    minio_server.mc("admin", "policy", "attach", "test", user + "-policy", "--user", user)

    prefix = unique_bucket_prefix()
    store = MinioStore(minio_server.settings(bucket_prefix=prefix, minio_access_key=user, minio_secret_key=password))
    with pytest.raises(StoreAuthError) as caught:
        store.put_bytes("runs/r1/x.json", b"{}")
    message = str(caught.value)
    assert f"bucket {prefix}-runs does not exist" in message
    assert "may not create it" in message
    assert password not in message


def test_unreachable_endpoint_gives_up_after_bounded_retries_with_a_clear_error(minio_server, caplog):
    with unused_port() as port:
        dead_endpoint = f"127.0.0.1:{port}"
        store = MinioStore(
            minio_server.settings(minio_endpoint=dead_endpoint), retry_attempts=3, retry_backoff_s=0.01
        )
        caplog.set_level(logging.WARNING)
        with pytest.raises(StoreUnavailable) as caught:
            store.get_bytes("runs/r1/x.json")
    message = str(caught.value)
    assert f"http://{dead_endpoint}" in message
    assert "failed 3 times" in message
    assert "Connection refused" in message
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2
    assert minio_server.secret_key not in message + caplog.text


class _KillServerBeforePart(urllib3.PoolManager):
    """Transport that kills the real server just before part N goes out.

    Not a mock: every request still goes to the real MinIO; this only picks the
    moment of the crash so the test is deterministic.
    """

    def __init__(self, server: MinioServer, part_number: int):
        super().__init__(retries=False, timeout=urllib3.Timeout(connect=2.0, read=30.0))
        self.server = server
        self.trigger = f"partNumber={part_number}&"
        self.killed = False

    def urlopen(self, method, url, redirect=True, **kw):
        if not self.killed and self.trigger in url + "&":
            self.killed = True
            self.server.kill()
        return super().urlopen(method, url, redirect=redirect, **kw)


def test_server_killed_during_registration_leaves_no_version_and_the_retry_registers_it(private_minio_server):
    """The real register step against a server of this test's own, killed as the weights go up."""
    from steps.lifecycle.model_registry import load_manifest, read_alias, registered_versions
    from tests.pipeline_fixtures import make_plan, snapshot_of
    from tests.registration_fixtures import register, trainer_outputs

    server = private_minio_server
    settings = server.settings(bucket_prefix=unique_bucket_prefix())
    setup = MinioStore(settings, part_size_bytes=PART_SIZE_BYTES)
    snapshot = snapshot_of(setup, "intents")
    plan = make_plan("run-crash", dataset="intents", algorithm="intent-classification")
    weights = os.urandom(12 * MiB)  # three parts: the copy into the version is a multipart upload
    result = trainer_outputs(setup, plan, weights)

    transport = _KillServerBeforePart(server, part_number=2)
    crashing = MinioStore(settings, part_size_bytes=PART_SIZE_BYTES, parallel_parts=1, retry_attempts=3,
                          retry_backoff_s=0.05, http_client=transport)
    with pytest.raises(StoreUnavailable, match="upload part 2"):
        register(crashing, plan, snapshot, result)
    assert transport.killed and server.process.poll() is not None
    server.start()  # this test's own server: no other test depends on this restart

    store = MinioStore(settings, part_size_bytes=PART_SIZE_BYTES)
    assert registered_versions(store, plan.model_name) == []  # no manifest: the version does not exist
    assert read_alias(store, plan.model_name) is None
    assert not store.exists(f"models/{plan.model_name}/versions/1/weights.safetensors")  # never completed

    again = register(store, plan, snapshot, result)  # the task's retry
    assert again.version == 1 and again.champion and registered_versions(store, plan.model_name) == [1]
    assert load_manifest(store, plan.model_name, 1).weights_sha256 == sha256_bytes(weights)
    assert store.get_bytes(f"models/{plan.model_name}/versions/1/weights.safetensors") == weights


def test_bytes_uploaded_counts_object_bytes_and_resnapshot_uploads_nothing(minio_server, tmp_path):
    store = small_part_store(minio_server)
    files = [write_random(tmp_path / "ds" / f"f{i}.bin", size) for i, size in enumerate([10, 70_000, 6 * MiB])]
    total_bytes = sum(f.stat().st_size for f in files)

    def snapshot() -> None:
        # Content-addressed: a blob whose sha256 is already stored is not sent again.
        for path in files:
            digest = sha256_file(path)
            key = f"datasets/blobs/sha256/{digest[:2]}/{digest}"
            if not store.exists(key):
                store.put_file(key, path, if_absent=True)

    snapshot()
    assert store.bytes_uploaded == total_bytes
    snapshot()
    assert store.bytes_uploaded == total_bytes, "re-snapshot of unchanged data uploaded bytes"


def test_put_files_and_get_files_move_many_files_intact(minio_server, tmp_path):
    store = small_part_store(minio_server)
    files = [write_random(tmp_path / "in" / f"{i}.bin", 1000 + i) for i in range(20)]
    stored = store.put_files([(f"runs/r9/out/{p.name}", p) for p in files])
    assert [s.size_bytes for s in stored] == [1000 + i for i in range(20)]
    store.get_files([(s.key, tmp_path / "out" / Path(s.key).name) for s in stored])
    for path in files:
        assert (tmp_path / "out" / path.name).read_bytes() == path.read_bytes()


def test_list_keys_is_recursive_sorted_and_scoped_to_the_prefix(minio_store):
    for key in ["runs/r2/b.json", "runs/r1/z/deep.json", "runs/r1/a.json", "datasets/snapshots/d/h.json"]:
        minio_store.put_bytes(key, b"{}")
    assert list(minio_store.list_keys("runs/r1/")) == ["runs/r1/a.json", "runs/r1/z/deep.json"]
    assert list(minio_store.list_keys("runs/")) == ["runs/r1/a.json", "runs/r1/z/deep.json", "runs/r2/b.json"]
    assert list(minio_store.list_keys("models/")) == []
    assert "datasets/snapshots/d/h.json" in list(minio_store.list_keys(""))


def test_delete_removes_the_object_and_every_model_version(minio_store):
    minio_store.put_bytes("runs/r1/staging.json", b"{}")
    minio_store.delete("runs/r1/staging.json")
    assert not minio_store.exists("runs/r1/staging.json")

    minio_store.put_bytes("models/m/staging/marker.json", b"1")
    minio_store.put_bytes("models/m/staging/marker.json", b"2")
    minio_store.delete("models/m/staging/marker.json")
    assert not minio_store.exists("models/m/staging/marker.json")
    leftovers = list(
        minio_store._client.list_objects(minio_store.bucket_name("models"), recursive=True, include_version=True)
    )
    assert leftovers == []
    minio_store.delete("models/m/staging/marker.json")  # deleting what is gone is fine


def test_invalid_keys_are_refused_before_reaching_the_server(minio_store):
    with pytest.raises(StoreError):
        minio_store.put_bytes("../etc/passwd", b"x")
    with pytest.raises(StoreError):
        minio_store.put_bytes("models/../runs/x", b"x")
