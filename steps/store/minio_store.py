"""The production store: MinIO through the `minio` SDK, one bucket per area.

Every object carries its sha256 as user metadata (x-amz-meta-sha256), checked on every
read. Large files go up as streamed multipart uploads; downloads stream to a temp file
that is renamed into place only after its digest matched. docs/storage.md has the layout.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar
from urllib.parse import urlsplit
from xml.etree import ElementTree

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.time import to_iso8601utc
from minio.versioningconfig import ENABLED, VersioningConfig

from steps.hashing import CHUNK_BYTES, sha256_bytes, sha256_stream, streaming_sha256
from steps.store.base import StoredObject
from steps.store.errors import (
    IntegrityError,
    ObjectExists,
    ObjectNotFound,
    StoreAuthError,
    StoreError,
    StoreUnavailable,
)
from steps.store.factory import (
    ENV_MINIO_ACCESS_KEY,
    ENV_MINIO_ENDPOINT,
    ENV_MINIO_SECRET_KEY,
    StoreSettings,
)
from steps.store.keys import AREAS, InvalidName, validate_key

log = logging.getLogger(__name__)

T = TypeVar("T")

SHA256_HEADER = "x-amz-meta-sha256"
MIN_PART_SIZE_BYTES = 5 * 1024 * 1024  # S3's floor for every part but the last
DEFAULT_PART_SIZE_BYTES = 16 * 1024 * 1024
OBJECT_LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
_BUCKET_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,49}$")

# Server answers that mean "try again shortly" (MinIO says XMinioServerNotInitialized
# while it starts up, SlowDown under load).
_RETRYABLE_S3_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "XMinioServerNotInitialized",
        "XMinioReadQuorum",
        "XMinioWriteQuorum",
    }
)
_CREDENTIAL_S3_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed"}
)


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

        host, secure = _parse_endpoint(settings.minio_endpoint, settings.minio_secure)
        self.endpoint_url = f"{'https' if secure else 'http'}://{host}"
        self.bucket_prefix = settings.bucket_prefix
        self.location = f"{self.endpoint_url}/{settings.bucket_prefix}-{{{','.join(AREAS)}}}"
        self.object_lock_days = settings.object_lock_days
        self.object_lock_mode = object_lock_mode
        self.part_size_bytes = part_size_bytes
        self.parallel_parts = max(1, parallel_parts)
        self.retry_attempts = retry_attempts
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        # Kept only to scrub them from any text that might reach a log or an exception.
        self._secrets = tuple(s for s in (settings.minio_access_key, settings.minio_secret_key) if s)

        if http_client is None:
            # Retries live in this class (one budget, one message), not inside urllib3.
            http_client = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
                maxsize=64,  # put_files/get_files workers x parallel parts share the pool
                retries=False,
            )
        self._client = Minio(
            host,
            access_key=settings.minio_access_key,
            secret_key=settings.minio_secret_key,
            secure=secure,
            http_client=http_client,
        )
        self._counter_lock = threading.Lock()
        self._bytes_uploaded = 0
        self._bucket_lock = threading.Lock()
        self._ready_buckets: set[str] = set()
        # Bounds the upload bytes held in memory across every concurrent upload.
        self._buffers = _ByteBudget(max(max_buffered_bytes, part_size_bytes))

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

    def _is_registered_version(self, key: str) -> bool:
        parts = key.split("/")
        return len(parts) >= 4 and parts[0] == "models" and parts[2] == "versions"

    def _locked(self, key: str) -> bool:
        return self.object_lock_days > 0 and self._is_registered_version(key)

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

    def _write_headers(self, key: str, sha256: str) -> dict[str, str]:
        headers = {"Content-Type": "application/octet-stream", SHA256_HEADER: sha256}
        if self._locked(key):
            retain_until = datetime.now(timezone.utc) + timedelta(days=self.object_lock_days)
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
            self._request("upload", key, put)
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
        create_only = if_absent or self._locked(key)
        headers = self._write_headers(key, sha256)
        upload_id = self._request(
            "start multipart upload",
            key,
            lambda _a: self._client._create_multipart_upload(bucket, name, dict(headers)),
        )
        try:
            etags = self._upload_parts(key, bucket, name, upload_id, path, sha256, size_bytes)
            self._complete_multipart(key, bucket, name, upload_id, etags, create_only, sha256)
        except ObjectExists:
            self._abort_quietly(bucket, name, upload_id)
            return self._existing_or_refuse(key, self.stat(key), sha256, if_absent)
        except BaseException:
            self._abort_quietly(bucket, name, upload_id)
            raise
        log.debug("stored %s (%d bytes, %d parts) in %s", key, size_bytes, len(etags), bucket)
        return StoredObject(key, sha256, size_bytes)

    def _upload_parts(
        self, key: str, bucket: str, name: str, upload_id: str, path: Path, sha256: str, size_bytes: int
    ) -> list[str]:
        digest = streaming_sha256()
        futures: list[Future[str]] = []
        in_flight = threading.BoundedSemaphore(self.parallel_parts)
        sent_bytes = 0

        def send(part_number: int, data: bytes, held: int) -> str:
            try:
                def upload(_attempt: int) -> str:
                    return self._client._upload_part(bucket, name, data, None, upload_id, part_number)

                etag = self._request(f"upload part {part_number}", key, upload)
                self._count_upload(len(data))
                return etag
            finally:
                in_flight.release()
                self._buffers.release(held)

        with ThreadPoolExecutor(max_workers=self.parallel_parts, thread_name_prefix="minio-part") as pool:
            try:
                with open(path, "rb") as fh:
                    part_number = 0
                    while True:
                        # Take both before reading: at most parallel_parts buffers for this
                        # file, and max_buffered_bytes across the whole store.
                        in_flight.acquire()
                        held = self._buffers.acquire(self.part_size_bytes)
                        try:
                            data = fh.read(self.part_size_bytes)
                        except BaseException:
                            in_flight.release()
                            self._buffers.release(held)
                            raise
                        if not data or any(f.done() and f.exception() for f in futures):
                            in_flight.release()
                            self._buffers.release(held)
                            break
                        part_number += 1
                        digest.update(data)
                        sent_bytes += len(data)
                        futures.append(pool.submit(send, part_number, data, held))
                        del data
            finally:
                etags = [f.result() for f in futures]  # re-raises the first failed part
        if digest.hexdigest() != sha256 or sent_bytes != size_bytes:
            raise StoreError(f"{path} changed while it was being uploaded to {key}; nothing was stored")
        return etags

    def _complete_multipart(
        self,
        key: str,
        bucket: str,
        name: str,
        upload_id: str,
        etags: list[str],
        create_only: bool,
        sha256: str,
    ) -> None:
        body = (
            "<CompleteMultipartUpload>"
            + "".join(f'<Part><PartNumber>{n}</PartNumber><ETag>"{etag}"</ETag></Part>' for n, etag in enumerate(etags, 1))
            + "</CompleteMultipartUpload>"
        ).encode()
        headers = {
            "Content-Type": "application/xml",
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        }
        if create_only:
            headers["If-None-Match"] = "*"

        def complete(attempt: int) -> None:
            try:
                # The SDK's _complete_multipart_upload takes no extra headers; this is
                # the same CompleteMultipartUpload request with If-None-Match added.
                response = self._client._execute(
                    "POST", bucket, name, body=body, headers=dict(headers), query_params={"uploadId": upload_id}
                )
            except S3Error as exc:
                # A retry after a lost response: the first attempt may have completed it.
                if exc.code in ("NoSuchUpload", "PreconditionFailed") and attempt > 1 and self._holds(key, sha256):
                    return
                raise
            # CompleteMultipartUpload may answer 200 with an <Error> body.
            root = ElementTree.fromstring(response.data)
            if root.tag.endswith("Error"):
                code = _xml_text(root, "Code")
                if code == "PreconditionFailed":
                    raise ObjectExists(f"{key} already exists; it is never overwritten")
                if code in _RETRYABLE_S3_CODES:
                    raise ServerError(f"complete multipart upload failed with {code}", 503)
                raise StoreError(f"MinIO at {self.endpoint_url} refused to complete the upload of {key} ({code})")

        self._request("complete multipart upload", key, complete)

    def _holds(self, key: str, sha256: str) -> bool:
        existing = self.stat(key)
        return existing is not None and existing.sha256 == sha256

    def _abort_quietly(self, bucket: str, name: str, upload_id: str) -> None:
        # Best effort: the parts are invisible either way, and MinIO expires stale
        # multipart uploads on its own when the server is unreachable now.
        try:
            self._client._abort_multipart_upload(bucket, name, upload_id)
        except Exception as exc:  # noqa: BLE001 - cleanup must not mask the real error
            log.debug("could not abort multipart upload of %s/%s: %s", bucket, name, self._scrub(type(exc).__name__))

    # -- buckets -----------------------------------------------------------
    def _ensure_bucket(self, area: str) -> str:
        bucket = self.bucket_name(area)
        if bucket in self._ready_buckets:
            return bucket
        with self._bucket_lock:
            if bucket in self._ready_buckets:
                return bucket
            want_lock = area == "models" and self.object_lock_days > 0
            self._request(f"prepare bucket {bucket}", None, lambda _a: self._prepare_bucket(bucket, area, want_lock))
            self._ready_buckets.add(bucket)
        return bucket

    def _prepare_bucket(self, bucket: str, area: str, want_lock: bool) -> None:
        # GET ?versioning (not HEAD) so a wrong key comes back as InvalidAccessKeyId or
        # SignatureDoesNotMatch rather than a bodiless 403.
        try:
            versioning = self._client.get_bucket_versioning(bucket)
            exists = True
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                versioning, exists = None, False
            elif exc.code == "AccessDenied":
                return  # may not read bucket config; writes will say whether access is granted
            else:
                raise
        if not exists:
            try:
                self._client.make_bucket(bucket, object_lock=want_lock)
                log.info("created bucket %s at %s%s", bucket, self.endpoint_url, " with object lock" if want_lock else "")
            except S3Error as exc:
                if exc.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    pass  # another writer created it first
                elif exc.code == "AccessDenied":
                    raise StoreAuthError(
                        f"bucket {bucket} does not exist at {self.endpoint_url} and these credentials may not "
                        f"create it; create it{' with object lock' if want_lock else ''} "
                        "or grant s3:CreateBucket to this user"
                    ) from None
                else:
                    raise
        if area != "models":
            return
        if want_lock and exists:
            try:
                self._client.get_object_lock_config(bucket)
            except S3Error as exc:
                if exc.code == "ObjectLockConfigurationNotFoundError":
                    raise StoreError(
                        f"bucket {bucket} was created without object lock, but object_lock_days="
                        f"{self.object_lock_days} asks for retention; object lock can only be turned on when a "
                        "bucket is created, so recreate it with object lock (or use a new bucket_prefix)"
                    ) from None
                raise
        if versioning is None or versioning.status != ENABLED:
            try:
                self._client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
            except S3Error as exc:
                if exc.code == "AccessDenied":
                    raise StoreAuthError(
                        f"bucket {bucket} must have versioning enabled and these credentials may not enable it"
                    ) from None
                raise

    # -- reads -------------------------------------------------------------
    def stat(self, key: str) -> StoredObject | None:
        bucket, name = self._locate(key)
        info = self._request("stat", key, lambda _a: self._stat_object(bucket, name))
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
        return self._request("stat", key, lambda _a: self._stat_object(bucket, name)) is not None

    def get_file(self, key: str, dest: Path) -> StoredObject:
        bucket, name = self._locate(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)

        def download(_attempt: int) -> StoredObject:
            response = self._client.get_object(bucket, name)
            finished = False
            try:
                expected = self._recorded_sha256(key, response.headers)
                digest = streaming_sha256()
                size_bytes = 0
                fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
                try:
                    with os.fdopen(fd, "wb") as out:
                        for chunk in _body_chunks(response):
                            digest.update(chunk)
                            out.write(chunk)
                            size_bytes += len(chunk)
                    expected_size = response.headers.get("content-length")
                    if expected_size is not None and size_bytes != int(expected_size):
                        # The server went away mid-body: a connection failure (retried), not corruption.
                        raise ConnectionError(f"connection closed after {size_bytes} of {expected_size} bytes")
                    finished = True  # body fully read: the connection can be reused
                    _check_digest(key, digest.hexdigest(), expected)
                    os.replace(tmp_name, dest)
                except BaseException:
                    Path(tmp_name).unlink(missing_ok=True)
                    raise
            finally:
                _release(response, finished)
            return StoredObject(key, expected, size_bytes)

        return self._request("download", key, download)

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
                expected = self._recorded_sha256(key, response.headers)
                data = response.read()
            finally:
                _release(response, data is not None)
            _check_digest(key, sha256_bytes(data), expected)
            return data

        return self._request("download", key, download)

    def _recorded_sha256(self, key: str, headers) -> str:
        expected = headers.get(SHA256_HEADER)
        if not expected:
            raise IntegrityError(f"{key} has no recorded sha256; refusing to trust it")
        return expected

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
            bucket = self.bucket_name(area)
            names = self._request(f"list {prefix or '/'}", None, lambda _a: self._list_names(bucket, sub))
            keys.extend(f"{area}/{name}" for name in names)
        return iter(sorted(keys))

    def _list_names(self, bucket: str, sub: str) -> list[str]:
        try:
            return [o.object_name for o in self._client.list_objects(bucket, prefix=sub or None, recursive=True)
                    if o.object_name and not o.is_dir]
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                return []
            raise

    # -- delete ------------------------------------------------------------
    def delete(self, key: str) -> None:
        bucket, name = self._locate(key)
        if not key.startswith("models/"):
            self._request("delete", key, lambda _a: self._client.remove_object(bucket, name))
            return

        # The models bucket is versioned: a plain DELETE would only add a delete marker
        # and leave every version behind (and would succeed even under retention). Delete
        # the versions themselves, newest first, so the server enforces object lock.
        def versions(_a: int) -> list[str | None]:
            try:
                found = [
                    o for o in self._client.list_objects(bucket, prefix=name, include_version=True)
                    if o.object_name == name
                ]
            except S3Error as exc:
                if exc.code == "NoSuchBucket":
                    return []
                raise
            found.sort(key=lambda o: (o.is_latest == "true", o.last_modified or datetime.min.replace(tzinfo=timezone.utc)),
                       reverse=True)
            return [o.version_id for o in found]

        for version_id in self._request("list versions", key, versions):
            self._request(
                "delete", key, lambda _a, v=version_id: self._client.remove_object(bucket, name, version_id=v)
            )

    # -- retries and error translation ------------------------------------
    def _request(self, what: str, key: str | None, call: Callable[[int], T]) -> T:
        """Run one server call with bounded retries on connection trouble; map S3 errors."""
        delay_s = self.retry_backoff_s
        reason = ""
        for attempt in range(1, self.retry_attempts + 1):
            try:
                return call(attempt)
            except S3Error as exc:
                if exc.code not in _RETRYABLE_S3_CODES:
                    raise self._translate(exc, what, key) from None
                reason = f"server answered {exc.code}"
            except (urllib3.exceptions.HTTPError, ConnectionError, ServerError, InvalidResponseError) as exc:
                reason = self._describe(exc)
            if attempt < self.retry_attempts:
                log.warning(
                    "MinIO at %s: %s%s failed (%s); retrying in %.2fs (attempt %d of %d)",
                    self.endpoint_url, what, f" {key}" if key else "", reason, delay_s, attempt, self.retry_attempts,
                )
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, self.retry_backoff_max_s)
        raise StoreUnavailable(
            f"MinIO at {self.endpoint_url} is unavailable: {what}{f' {key}' if key else ''} failed "
            f"{self.retry_attempts} times ({reason}); check that the server is running and that "
            f"{ENV_MINIO_ENDPOINT} points at it"
        )

    def _translate(self, exc: S3Error, what: str, key: str | None) -> StoreError:
        action = f"{what} {key}" if key else what
        target = key or "the store"
        code = exc.code or "unknown"
        message = self._scrub(exc.message or "")
        if code in _CREDENTIAL_S3_CODES:
            return StoreAuthError(
                f"MinIO at {self.endpoint_url} rejected the credentials ({code}) on {action}; "
                f"check {ENV_MINIO_ACCESS_KEY} and {ENV_MINIO_SECRET_KEY} (the minio_default connection)"
            )
        if any(word in message.lower() for word in ("worm", "retention", "object lock", "locked")):
            # MinIO answers InvalidRequest "Object is WORM protected" for a retained version.
            return StoreAuthError(
                f"{target} is under object-lock retention; MinIO at {self.endpoint_url} refused to {what} it ({code})"
            )
        if code == "AccessDenied":
            return StoreAuthError(
                f"MinIO at {self.endpoint_url} denied access ({code}) on {action}: the credentials are "
                f"wrong or lack permission; check {ENV_MINIO_ACCESS_KEY}, {ENV_MINIO_SECRET_KEY} and the user's policy"
            )
        if code == "PreconditionFailed":
            return ObjectExists(f"{target} already exists; it is never overwritten")
        if code in ("NoSuchKey", "NoSuchVersion"):
            return ObjectNotFound(f"{target} not found in {self.location}")
        if code == "NoSuchBucket":
            bucket = exc.bucket_name or "bucket"
            return ObjectNotFound(f"{target} not found: bucket {bucket} does not exist at {self.endpoint_url}")
        return StoreError(f"MinIO at {self.endpoint_url} failed on {action}: {code}: {message}")

    def _describe(self, exc: BaseException) -> str:
        reason = getattr(exc, "reason", None) or exc
        text = str(reason)
        # urllib3 reprs carry object addresses; keep the part a person can act on.
        if "Errno" in text:
            text = text[text.index("[Errno"):].rstrip(")'\"")
        return self._scrub(f"{type(reason).__name__}: {text}")[:300]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class _ByteBudget:
    """A counting semaphore in bytes: callers wait until their buffer fits the budget."""

    def __init__(self, limit_bytes: int):
        self._limit_bytes = limit_bytes
        self._used_bytes = 0
        self._cond = threading.Condition()

    def acquire(self, size_bytes: int) -> int:
        size_bytes = min(size_bytes, self._limit_bytes)  # one oversized request must still fit
        with self._cond:
            self._cond.wait_for(lambda: self._used_bytes + size_bytes <= self._limit_bytes)
            self._used_bytes += size_bytes
        return size_bytes

    def release(self, size_bytes: int) -> None:
        with self._cond:
            self._used_bytes -= size_bytes
            self._cond.notify_all()

    @contextmanager
    def hold(self, size_bytes: int) -> Iterator[None]:
        held = self.acquire(size_bytes)
        try:
            yield
        finally:
            self.release(held)


def _parse_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """Accept 'host:port' or 'http(s)://host:port'; the SDK wants bare host:port."""
    endpoint = endpoint.strip()
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise StoreError(f"{ENV_MINIO_ENDPOINT} must be host:port or http(s)://host:port, without a path")
        if "@" in parts.netloc:
            raise StoreError(f"{ENV_MINIO_ENDPOINT} must not carry credentials; use {ENV_MINIO_ACCESS_KEY}")
        return parts.netloc, parts.scheme == "https"
    if "/" in endpoint or "@" in endpoint:
        raise StoreError(f"{ENV_MINIO_ENDPOINT} must be host:port or http(s)://host:port, without a path")
    return endpoint, secure


def _body_chunks(response) -> Iterator[memoryview | bytes]:
    """The body in CHUNK_BYTES pieces, each valid until the next is produced.

    An undecoded body is read straight from the http.client response into one reused
    buffer: urllib3's read() allocates and copies every chunk, which measured about a
    quarter of a download's CPU on the 2-core benchmark machine (bench/minio_throughput.py).
    """
    raw = getattr(response, "_fp", None)
    encoding = (response.headers.get("content-encoding") or "identity").lower()
    if raw is None or not hasattr(raw, "readinto") or encoding != "identity":
        while chunk := response.read(CHUNK_BYTES):
            yield chunk
        return
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    while n_read := raw.readinto(buffer):
        yield view[:n_read]


def _release(response, fully_read: bool) -> None:
    # close() would drop the pooled TCP connection; only a half-read body needs that.
    if not fully_read:
        response.close()
    response.release_conn()


def _check_digest(key: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise IntegrityError(f"{key} is corrupt: sha256 {actual} does not match recorded {expected}")


def _xml_text(root: ElementTree.Element, tag: str) -> str:
    for element in root.iter():
        if element.tag.endswith(tag):
            return element.text or ""
    return ""
