"""The S3 protocol details the MinIO store relies on: bounded retries with one message, S3 error codes
translated into store errors (never carrying credentials), endpoint parsing, and response bodies
streamed without copies. No store semantics (keys, areas, create-only rules) live here."""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit
from xml.etree import ElementTree

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.versioningconfig import ENABLED, VersioningConfig

from steps.hashing import CHUNK_BYTES, streaming_sha256
from steps.store.errors import (
    CorruptContent,
    IntegrityError,
    ObjectExists,
    ObjectNotFound,
    StoreAuthError,
    StoreError,
    StoreUnavailable,
)
from steps.store.settings import ENV_MINIO_ACCESS_KEY, ENV_MINIO_ENDPOINT, ENV_MINIO_SECRET_KEY

log = logging.getLogger("steps.store.minio_store")

T = TypeVar("T")

# Server answers that mean "try again shortly" (MinIO says XMinioServerNotInitialized
# while it starts up, SlowDown under load).
RETRYABLE_S3_CODES = frozenset(
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
CREDENTIAL_S3_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed"}
)



class S3Requests:
    """Runs server calls for one store: retries, backoff, and errors a person can act on."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        location: str,
        retry_attempts: int,
        retry_backoff_s: float,
        retry_backoff_max_s: float,
        secrets: tuple[str, ...],
    ):
        self.endpoint_url = endpoint_url
        self.location = location
        self.retry_attempts = retry_attempts
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        # Kept only to scrub them from any text that might reach a log or an exception.
        self._secrets = secrets

    def call(self, what: str, key: str | None, call: Callable[[int], T]) -> T:
        """Run one server call with bounded retries on connection trouble; map S3 errors."""
        delay_s = self.retry_backoff_s
        reason = ""
        for attempt in range(1, self.retry_attempts + 1):
            try:
                return call(attempt)
            except S3Error as exc:
                if exc.code not in RETRYABLE_S3_CODES:
                    raise self.translate(exc, what, key) from None
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

    def translate(self, exc: S3Error, what: str, key: str | None) -> StoreError:
        action = f"{what} {key}" if key else what
        target = key or "the store"
        code = exc.code or "unknown"
        message = self.scrub(exc.message or "")
        if code in CREDENTIAL_S3_CODES:
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
        return self.scrub(f"{type(reason).__name__}: {text}")[:300]

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class ByteBudget:
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


def make_client(
    host: str,
    secure: bool,
    access_key: str,
    secret_key: str,
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    http_client: urllib3.PoolManager | None = None,
) -> Minio:
    if http_client is None:
        # Retries live in S3Requests (one budget, one message), not inside urllib3.
        http_client = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=64,  # put_files/get_files workers x parallel parts share the pool
            retries=False,
        )
    return Minio(host, access_key=access_key, secret_key=secret_key, secure=secure, http_client=http_client)


def stream_body_to_file(response, dest: Path, check: Callable[[str], None]) -> int:
    """Write the body to a temp file beside `dest`, hashing it; `check(sha256)` must pass before the
    file is renamed into place. Returns the size. A short body is a connection failure (retried)."""
    digest = streaming_sha256()
    size_bytes = 0
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in body_chunks(response):
                digest.update(chunk)
                out.write(chunk)
                size_bytes += len(chunk)
        expected_size = response.headers.get("content-length")
        if expected_size is not None and size_bytes != int(expected_size):
            # The server went away mid-body: a connection failure (retried), not corruption.
            raise ConnectionError(f"connection closed after {size_bytes} of {expected_size} bytes")
        check(digest.hexdigest())
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return size_bytes


def recorded_sha256(key: str, headers, header_name: str) -> str:
    expected = headers.get(header_name)
    if not expected:
        raise IntegrityError(f"{key} has no recorded sha256; refusing to trust it")
    return expected


def parse_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
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


def body_chunks(response) -> Iterator[memoryview | bytes]:
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


def release_response(response, fully_read: bool) -> None:
    # close() would drop the pooled TCP connection; only a half-read body needs that.
    if not fully_read:
        response.close()
    response.release_conn()


def check_digest(key: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise CorruptContent(key, expected, actual)


def xml_text(root: ElementTree.Element, tag: str) -> str:
    for element in root.iter():
        if element.tag.endswith(tag):
            return element.text or ""
    return ""


def prepare_bucket(client: Minio, bucket: str, *, versioned: bool, object_lock_days: int, endpoint_url: str) -> None:
    """Create the bucket if missing; a versioned bucket gets versioning, and object lock when asked for."""
    want_lock = object_lock_days > 0
    # GET ?versioning (not HEAD) so a wrong key comes back as InvalidAccessKeyId or
    # SignatureDoesNotMatch rather than a bodiless 403.
    try:
        versioning = client.get_bucket_versioning(bucket)
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
            client.make_bucket(bucket, object_lock=want_lock)
            log.info("created bucket %s at %s%s", bucket, endpoint_url, " with object lock" if want_lock else "")
        except S3Error as exc:
            if exc.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                pass  # another writer created it first
            elif exc.code == "AccessDenied":
                raise StoreAuthError(
                    f"bucket {bucket} does not exist at {endpoint_url} and these credentials may not "
                    f"create it; create it{' with object lock' if want_lock else ''} "
                    "or grant s3:CreateBucket to this user"
                ) from None
            else:
                raise
    if not versioned:
        return
    if want_lock and exists:
        try:
            client.get_object_lock_config(bucket)
        except S3Error as exc:
            if exc.code == "ObjectLockConfigurationNotFoundError":
                raise StoreError(
                    f"bucket {bucket} was created without object lock, but object_lock_days="
                    f"{object_lock_days} asks for retention; object lock can only be turned on when a "
                    "bucket is created, so recreate it with object lock (or use a new bucket_prefix)"
                ) from None
            raise
    if versioning is None or versioning.status != ENABLED:
        try:
            client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
        except S3Error as exc:
            if exc.code == "AccessDenied":
                raise StoreAuthError(
                    f"bucket {bucket} must have versioning enabled and these credentials may not enable it"
                ) from None
            raise

