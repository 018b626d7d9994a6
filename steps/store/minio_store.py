"""The production store: MinIO through the `minio` SDK, one bucket per area.

Every object carries its sha256 as user metadata (x-amz-meta-sha256), checked on every
read. Large files go up as streamed multipart uploads; downloads stream to a temp file
that is renamed into place only after its digest matched. docs/storage.md has the layout.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import urllib3
from minio.error import S3Error
from minio.time import to_iso8601utc

from steps.hashing import sha256_bytes, sha256_stream
from steps.store.base import StoredObject
from steps.store.errors import (
    IntegrityError,
    ObjectExists,
    StoreAuthError,
    StoreError,
)
from steps.store.keys import AREAS, InvalidName, validate_key
from steps.store.s3_conditional import conditional_replace
from steps.store.s3_multipart import MultipartUploader
from steps.store.s3_protocol import (
    ByteBudget,
    S3Requests,
    check_digest,
    make_client,
    parse_endpoint,
    prepare_bucket,
    recorded_sha256,
    release_response,
    stream_body_to_file,
)
from steps.store.s3_versions import delete_every_version
from steps.store.settings import (
    ENV_MINIO_ACCESS_KEY,
    ENV_MINIO_ENDPOINT,
    ENV_MINIO_SECRET_KEY,
    StoreSettings,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

SHA256_HEADER = "x-amz-meta-sha256"
MIN_PART_SIZE_BYTES = 5 * 1024 * 1024  # S3's floor for every part but the last
DEFAULT_PART_SIZE_BYTES = 16 * 1024 * 1024
OBJECT_LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
_BUCKET_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,49}$")

class MinioStore:
    """ArtifactStore on MinIO: key '<area>/<rest>' is object '<rest>' in bucket '<prefix>-<area>'.

    Buckets are created on first write; the models bucket has versioning (and, with
    settings.object_lock_days > 0, object lock). Under object lock, registered versions
    (models/<model>/versions/...) are written create-only with a retention period, so
    neither an overwrite nor a delete can touch them until it ends.
    """

    def __init__(
        self,
        settings: StoreSettings,
        *,
        part_size_bytes: int = DEFAULT_PART_SIZE_BYTES,
        parallel_parts: int = 4,
        max_buffered_bytes: int = 128 * 1024 * 1024,
        retry_attempts: int = 5,
        retry_backoff_s: float = 0.5,
        retry_backoff_max_s: float = 8.0,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        object_lock_mode: str = "GOVERNANCE",
        http_client: urllib3.PoolManager | None = None,
    ):
        if not settings.minio_endpoint:
            raise StoreError(f"{ENV_MINIO_ENDPOINT} is not set; give host:port of the MinIO server")
        if not settings.minio_access_key or not settings.minio_secret_key:
            raise StoreAuthError(
                f"MinIO credentials are not set; provide {ENV_MINIO_ACCESS_KEY} and {ENV_MINIO_SECRET_KEY} "
                "(the minio_default connection carries them)"
            )
        if part_size_bytes < MIN_PART_SIZE_BYTES:
            raise StoreError(f"part_size_bytes={part_size_bytes} is below S3's minimum of {MIN_PART_SIZE_BYTES}")
        if object_lock_mode not in OBJECT_LOCK_MODES:
            raise StoreError(f"object_lock_mode {object_lock_mode!r} is not one of {', '.join(OBJECT_LOCK_MODES)}")
        if retry_attempts < 1:
            raise StoreError("retry_attempts must be at least 1")
        if not _BUCKET_PREFIX_RE.match(settings.bucket_prefix):
            raise StoreError(
                f"bucket prefix {settings.bucket_prefix!r} would not make valid bucket names; use 2-50 lowercase "
                "letters, digits or '-', starting with a letter or digit"
            )

        host, secure = parse_endpoint(settings.minio_endpoint, settings.minio_secure)
        self.endpoint_url = f"{'https' if secure else 'http'}://{host}"
        self.bucket_prefix = settings.bucket_prefix
        self.location = f"{self.endpoint_url}/{settings.bucket_prefix}-{{{','.join(AREAS)}}}"
        self.object_lock_days = settings.object_lock_days
        self.object_lock_mode = object_lock_mode
        self.part_size_bytes = part_size_bytes
        self.parallel_parts = max(1, parallel_parts)
        self._requests = S3Requests(
            endpoint_url=self.endpoint_url,
            location=self.location,
            retry_attempts=retry_attempts,
            retry_backoff_s=retry_backoff_s,
            retry_backoff_max_s=retry_backoff_max_s,
            secrets=tuple(s for s in (settings.minio_access_key, settings.minio_secret_key) if s),
        )

        self._client = make_client(
            host, secure, settings.minio_access_key, settings.minio_secret_key,
            connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s, http_client=http_client,
        )
        self._counter_lock = threading.Lock()
        self._bytes_uploaded = 0
        self._bucket_lock = threading.Lock()
        self._ready_buckets: set[str] = set()
        # Bounds the upload bytes held in memory across every concurrent upload.
        self._buffers = ByteBudget(max(max_buffered_bytes, part_size_bytes))
        self._multipart = MultipartUploader(
            self._client,
            self._requests,
            part_size_bytes=part_size_bytes,
            parallel_parts=self.parallel_parts,
            buffers=self._buffers,
            count_upload=self._count_upload,
        )

    # -- counters ----------------------------------------------------------
    @property
    def bytes_uploaded(self) -> int:
        """Object bytes this store has sent to the server (bodies of PUTs and parts)."""
        with self._counter_lock:
            return self._bytes_uploaded

    def _count_upload(self, size_bytes: int) -> None:
        with self._counter_lock:
            self._bytes_uploaded += size_bytes

    # -- keys --------------------------------------------------------------
    def bucket_name(self, area: str) -> str:
        return f"{self.bucket_prefix}-{area}"

    def _locate(self, key: str) -> tuple[str, str]:
        validate_key(key)
        area, rest = key.split("/", 1)
        return self.bucket_name(area), rest

    def _locked(self, key: str) -> bool:
        """Under object lock, a registered version's files (models/<model>/versions/...) are retained."""
        parts = key.split("/")
        return self.object_lock_days > 0 and len(parts) >= 4 and parts[0] == "models" and parts[2] == "versions"

    # -- writes ------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> StoredObject:
        bucket, name = self._locate(key)
        self._ensure_bucket(key.split("/", 1)[0])
        return self._put_single(key, bucket, name, data, sha256_bytes(data), if_absent)

    def put_file(self, key: str, path: Path, *, if_absent: bool = False) -> StoredObject:
        bucket, name = self._locate(key)
        path = Path(path)
        self._ensure_bucket(key.split("/", 1)[0])
        size_bytes = path.stat().st_size
        if size_bytes <= self.part_size_bytes:
            # Small enough to hold one part's worth: read once, hash the bytes in hand.
            # Read at most one byte past a part, in case the file grew since stat().
            with self._buffers.hold(size_bytes + 1):
                with open(path, "rb") as fh:
                    data = fh.read(self.part_size_bytes + 1)
                if len(data) <= self.part_size_bytes:
                    return self._put_single(key, bucket, name, data, sha256_bytes(data), if_absent)
                del data
        with open(path, "rb") as fh:
            sha256, size_bytes = sha256_stream(fh)
        if (if_absent or self._locked(key)) and (existing := self.stat(key)) is not None:
            # Cheap early answer; the conditional complete below is what guarantees it.
            return self._existing_or_refuse(key, existing, sha256, if_absent)
        return self._put_multipart(key, bucket, name, path, sha256, size_bytes, if_absent)

    def put_files(
        self, items: Iterable[tuple[str, Path]], *, if_absent: bool = False, max_workers: int = 16
    ) -> list[StoredObject]:
        """Upload many files concurrently (many small files are latency-bound, not bandwidth-bound)."""
        items = list(items)
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="minio-put") as pool:
            futures = [pool.submit(self.put_file, key, path, if_absent=if_absent) for key, path in items]
            return [f.result() for f in futures]

    def compare_and_swap(self, key: str, data: bytes, *, expected_sha256: str | None) -> StoredObject:
        bucket, name = self._locate(key)
        self._ensure_bucket(key.split("/", 1)[0])
        sha256 = sha256_bytes(data)
        conditional_replace(self._client, self._requests, key=key, bucket=bucket, name=name, data=data, sha256=sha256,
                            headers=self._write_headers(key, sha256), sha256_header=SHA256_HEADER,
                            expected_sha256=expected_sha256)
        self._count_upload(len(data))
        return StoredObject(key, sha256, len(data))

    def _write_headers(self, key: str, sha256: str) -> dict[str, str]:
        headers = {"Content-Type": "application/octet-stream", SHA256_HEADER: sha256}
        if self._locked(key):
            retain_until = datetime.now(UTC) + timedelta(days=self.object_lock_days)
            headers["x-amz-object-lock-mode"] = self.object_lock_mode
            headers["x-amz-object-lock-retain-until-date"] = to_iso8601utc(retain_until) or ""
        return headers

    def _put_single(
        self, key: str, bucket: str, name: str, data: bytes, sha256: str, if_absent: bool
    ) -> StoredObject:
        create_only = if_absent or self._locked(key)
        headers = self._write_headers(key, sha256)
        if create_only:
            # Conditional PUT: the server refuses atomically if the key already exists.
            headers["If-None-Match"] = "*"

        def put(attempt: int) -> None:
            # The SDK's public put_object cannot send If-None-Match; _put_object is the
            # same PutObject call with our headers (pinned minio==7.2.20).
            try:
                self._client._put_object(bucket, name, data, dict(headers))
            except S3Error as exc:
                # A retry after a lost response: our own first attempt may have landed.
                if exc.code == "PreconditionFailed" and attempt > 1 and self._holds(key, sha256):
                    return
                raise
            self._count_upload(len(data))

        try:
            self._requests.call("upload", key, put)
        except ObjectExists:
            return self._existing_or_refuse(key, self.stat(key), sha256, if_absent)
        log.debug("stored %s (%d bytes) in %s", key, len(data), bucket)
        return StoredObject(key, sha256, len(data))

    def _existing_or_refuse(
        self, key: str, existing: StoredObject | None, sha256: str, if_absent: bool
    ) -> StoredObject:
        # A retention-locked version is immutable, but writing the identical bytes again
        # (a retried registration) must succeed rather than fail the retry.
        if not if_absent and existing is not None and existing.sha256 == sha256:
            return existing
        if self._locked(key) and not if_absent:
            raise ObjectExists(
                f"{key} is a registered version under object-lock retention; it is never overwritten"
            )
        raise ObjectExists(f"{key} already exists; it is never overwritten")

    def _put_multipart(
        self, key: str, bucket: str, name: str, path: Path, sha256: str, size_bytes: int, if_absent: bool
    ) -> StoredObject:
        try:
            parts = self._multipart.upload(
                key, bucket, name, path, sha256, size_bytes, self._write_headers(key, sha256),
                create_only=if_absent or self._locked(key), holds=lambda: self._holds(key, sha256),
            )
        except ObjectExists:
            return self._existing_or_refuse(key, self.stat(key), sha256, if_absent)
        log.debug("stored %s (%d bytes, %d parts) in %s", key, size_bytes, parts, key.split("/", 1)[0])
        return StoredObject(key, sha256, size_bytes)

    def _holds(self, key: str, sha256: str) -> bool:
        existing = self.stat(key)
        return existing is not None and existing.sha256 == sha256

    # -- buckets -----------------------------------------------------------
    def _ensure_bucket(self, area: str) -> str:
        bucket = self.bucket_name(area)
        if bucket in self._ready_buckets:
            return bucket
        with self._bucket_lock:
            if bucket in self._ready_buckets:
                return bucket
            want_lock = area == "models" and self.object_lock_days > 0
            self._requests.call(f"prepare bucket {bucket}", None, lambda _a: prepare_bucket(self._client, bucket, versioned=area == "models", object_lock_days=self.object_lock_days if want_lock else 0, endpoint_url=self.endpoint_url))
            self._ready_buckets.add(bucket)
        return bucket

    # -- reads -------------------------------------------------------------
    def stat(self, key: str) -> StoredObject | None:
        bucket, name = self._locate(key)
        info = self._requests.call("stat", key, lambda _a: self._stat_object(bucket, name))
        if info is None:
            return None
        sha256 = (info.metadata or {}).get(SHA256_HEADER)
        if not sha256:
            raise IntegrityError(f"{key} has no recorded sha256; refusing to trust it")
        return StoredObject(key, sha256, int(info.size or 0))

    def _stat_object(self, bucket: str, name: str):
        try:
            return self._client.stat_object(bucket, name)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchVersion"):
                return None
            raise

    def exists(self, key: str) -> bool:
        bucket, name = self._locate(key)
        return self._requests.call("stat", key, lambda _a: self._stat_object(bucket, name)) is not None

    def get_file(self, key: str, dest: Path) -> StoredObject:
        bucket, name = self._locate(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)

        def download(_attempt: int) -> StoredObject:
            response = self._client.get_object(bucket, name)
            finished = False
            try:
                expected = recorded_sha256(key, response.headers, SHA256_HEADER)
                size_bytes = stream_body_to_file(response, dest, lambda actual: check_digest(key, actual, expected))
                finished = True  # body fully read and checked: the connection can be reused
            finally:
                release_response(response, finished)
            return StoredObject(key, expected, size_bytes)

        return self._requests.call("download", key, download)

    def get_files(self, items: Iterable[tuple[str, Path]], *, max_workers: int = 16) -> list[StoredObject]:
        """Download many objects concurrently; each is verified as in get_file."""
        items = list(items)
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="minio-get") as pool:
            futures = [pool.submit(self.get_file, key, dest) for key, dest in items]
            return [f.result() for f in futures]

    def get_bytes(self, key: str) -> bytes:
        bucket, name = self._locate(key)

        def download(_attempt: int) -> bytes:
            response = self._client.get_object(bucket, name)
            data = None
            try:
                expected = recorded_sha256(key, response.headers, SHA256_HEADER)
                data = response.read()
            finally:
                release_response(response, data is not None)
            check_digest(key, sha256_bytes(data), expected)
            return data

        return self._requests.call("download", key, download)

    def list_keys(self, prefix: str) -> Iterator[str]:
        scopes = []  # (area, object-name prefix within its bucket)
        for area in AREAS:
            area_root = area + "/"
            if area_root.startswith(prefix):
                scopes.append((area, ""))
            elif prefix.startswith(area_root):
                scopes.append((area, prefix[len(area_root):]))
        if not scopes:
            raise InvalidName(f"store prefix {prefix!r} must start with one of: {', '.join(AREAS)}")
        keys: list[str] = []
        for area, sub in scopes:
            names = self._list_names(self.bucket_name(area), sub, prefix)
            keys.extend(f"{area}/{name}" for name in names)
        return iter(sorted(keys))

    def _list_names(self, bucket: str, sub: str, prefix: str) -> list[str]:
        def names(_attempt: int) -> list[str]:
            try:
                return [o.object_name for o in self._client.list_objects(bucket, prefix=sub or None, recursive=True)
                        if o.object_name and not o.is_dir]
            except S3Error as exc:
                if exc.code == "NoSuchBucket":
                    return []
                raise

        return self._requests.call(f"list {prefix or '/'}", None, names)

    # -- delete ------------------------------------------------------------
    def delete(self, key: str) -> None:
        bucket, name = self._locate(key)
        if not key.startswith("models/"):
            self._requests.call("delete", key, lambda _a: self._client.remove_object(bucket, name))
            return
        delete_every_version(self._client, self._requests, key, bucket, name)  # versioned: see s3_versions
