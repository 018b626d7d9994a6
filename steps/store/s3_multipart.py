"""S3 multipart uploads for the MinIO store: parts streamed in parallel under a byte budget, the whole
file re-hashed as it is sent, and a complete that can be create-only (If-None-Match: *), which the
SDK's public API cannot send (pinned minio==7.2.20)."""
from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from xml.etree import ElementTree

from minio import Minio
from minio.error import S3Error, ServerError

from steps.hashing import streaming_sha256
from steps.store.errors import ObjectExists, StoreError
from steps.store.s3_protocol import RETRYABLE_S3_CODES, ByteBudget, S3Requests, log, xml_text


class MultipartUploader:
    def __init__(
        self,
        client: Minio,
        requests: S3Requests,
        *,
        part_size_bytes: int,
        parallel_parts: int,
        buffers: ByteBudget,
        count_upload: Callable[[int], None],
    ):
        self._client = client
        self._requests = requests
        self.part_size_bytes = part_size_bytes
        self.parallel_parts = parallel_parts
        self._buffers = buffers
        self._count_upload = count_upload

    def upload(
        self,
        key: str,
        bucket: str,
        name: str,
        path: Path,
        sha256: str,
        size_bytes: int,
        headers: dict[str, str],
        *,
        create_only: bool,
        holds: Callable[[], bool],
    ) -> int:
        """Upload `path` as `bucket/name`; returns the number of parts. Aborts on any failure."""
        upload_id = self._requests.call(
            "start multipart upload",
            key,
            lambda _a: self._client._create_multipart_upload(bucket, name, dict(headers)),
        )
        try:
            etags = self._upload_parts(key, bucket, name, upload_id, path, sha256, size_bytes)
            self._complete(key, bucket, name, upload_id, etags, create_only, holds)
        except BaseException:
            self._abort_quietly(bucket, name, upload_id)
            raise
        return len(etags)

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

                etag = self._requests.call(f"upload part {part_number}", key, upload)
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

    def _complete(
        self,
        key: str,
        bucket: str,
        name: str,
        upload_id: str,
        etags: list[str],
        create_only: bool,
        holds: Callable[[], bool],
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
                if exc.code in ("NoSuchUpload", "PreconditionFailed") and attempt > 1 and holds():
                    return
                raise
            # CompleteMultipartUpload may answer 200 with an <Error> body.
            root = ElementTree.fromstring(response.data)
            if root.tag.endswith("Error"):
                code = xml_text(root, "Code")
                if code == "PreconditionFailed":
                    raise ObjectExists(f"{key} already exists; it is never overwritten")
                if code in RETRYABLE_S3_CODES:
                    raise ServerError(f"complete multipart upload failed with {code}", 503)
                raise StoreError(f"MinIO at {self._requests.endpoint_url} refused to complete the upload of {key} ({code})")

        self._requests.call("complete multipart upload", key, complete)

    def _abort_quietly(self, bucket: str, name: str, upload_id: str) -> None:
        # Best effort: the parts are invisible either way, and MinIO expires stale
        # multipart uploads on its own when the server is unreachable now.
        try:
            self._client._abort_multipart_upload(bucket, name, upload_id)
        except Exception as exc:  # noqa: BLE001 - cleanup must not mask the real error
            log.debug("could not abort multipart upload of %s/%s: %s", bucket, name, self._requests.scrub(type(exc).__name__))
