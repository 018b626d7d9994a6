"""Compare-and-swap of one small object on S3/MinIO: a PutObject conditional on the ETag read
just before it (If-Match), or on the key's absence (If-None-Match: *), so the server refuses
the write atomically when another writer got there first."""
from __future__ import annotations

from minio import Minio
from minio.error import S3Error

from steps.store.errors import IntegrityError, ObjectChanged
from steps.store.s3_protocol import S3Requests

_MISSING_CODES = ("NoSuchKey", "NoSuchBucket", "NoSuchVersion")


def _short(sha256: str | None) -> str:
    return f"sha256 {sha256[:12]}" if sha256 else "nothing"


def conditional_replace(
    client: Minio,
    requests: S3Requests,
    *,
    key: str,
    bucket: str,
    name: str,
    data: bytes,
    sha256: str,
    headers: dict[str, str],
    sha256_header: str,
    expected_sha256: str | None,
) -> None:
    """Write data to bucket/name only if it still holds expected_sha256 (None: only if absent).

    Raises ObjectChanged when it does not. The ETag is what the server compares; the sha256
    check before it turns "someone wrote in between my read and this call" into the same answer.
    """

    def swap(attempt: int) -> None:
        try:
            info = client.stat_object(bucket, name)
        except S3Error as exc:
            if exc.code not in _MISSING_CODES:
                raise
            info = None
        current = (info.metadata or {}).get(sha256_header) if info is not None else None
        if attempt > 1 and current == sha256:
            return  # a retry after a lost response: our own first attempt landed
        if info is not None and current is None:
            raise IntegrityError(f"{key} has no recorded sha256; refusing to trust it")
        if current != expected_sha256:
            raise ObjectChanged(
                f"{key} changed since it was read: it holds {_short(current)}, expected {_short(expected_sha256)}"
            )
        conditional: dict[str, str | list[str] | tuple[str]] = dict(headers)
        if info is None:
            conditional["If-None-Match"] = "*"
        else:
            conditional["If-Match"] = f'"{info.etag}"'
        try:
            # The SDK's public put_object cannot send If-Match; _put_object is the same
            # PutObject call with our headers (pinned minio==7.2.20), as in MinioStore._put_single.
            client._put_object(bucket, name, data, conditional)
        except S3Error as exc:
            if exc.code == "PreconditionFailed":
                raise ObjectChanged(
                    f"{key} changed since it was read: another writer replaced {_short(expected_sha256)} first"
                ) from None
            raise

    requests.call("compare-and-swap", key, swap)

