"""Deleting a key from a versioned bucket (the models bucket): every version, newest first.

A plain DELETE would only add a delete marker and leave every version behind (and would
succeed even under retention); deleting the versions themselves lets the server enforce
object lock.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from minio import Minio
from minio.error import S3Error

from steps.store.s3_protocol import S3Requests


def delete_every_version(client: Minio, requests: S3Requests, key: str, bucket: str, name: str) -> None:
    def versions(_a: int) -> list[str | None]:
        try:
            found = [o for o in client.list_objects(bucket, prefix=name, include_version=True) if o.object_name == name]
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                return []
            raise
        found.sort(key=lambda o: (o.is_latest == "true", o.last_modified or datetime.min.replace(tzinfo=UTC)),
                   reverse=True)
        return [o.version_id for o in found]

    def remove(version_id: str | None) -> Callable[[int], None]:
        return lambda _attempt: client.remove_object(bucket, name, version_id=version_id)

    for version_id in requests.call("list versions", key, versions):
        requests.call("delete", key, remove(version_id))
