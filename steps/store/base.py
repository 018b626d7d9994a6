"""The storage protocol: bytes in and out by key, each object carrying its sha256."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size_bytes: int


@runtime_checkable
class ArtifactStore(Protocol):
    """What every backend (local directory, MinIO) provides.

    Keys are '<area>/<path>' with area in steps.store.keys.AREAS. Every object's
    sha256 is recorded at write time and checked on every read; a mismatch raises
    IntegrityError. Writes are atomic: a reader sees the whole object or nothing.
    """

    #: A credential-free description of where the store is, safe to log.
    location: str

    def put_file(self, key: str, path: Path, *, if_absent: bool = False) -> StoredObject:
        """Stream a local file up. With if_absent, raise ObjectExists instead of overwriting."""
        ...

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> StoredObject:
        """Write small bytes. With if_absent, raise ObjectExists instead of overwriting."""
        ...

    def compare_and_swap(self, key: str, data: bytes, *, expected_sha256: str | None) -> StoredObject:
        """Write data only if key still holds the object whose sha256 is expected_sha256 (None:
        only if key is absent), as one atomic step; otherwise raise ObjectChanged, writing nothing.
        For small mutable records that several runs may move at once (a model's aliases)."""
        ...

    def get_file(self, key: str, dest: Path) -> StoredObject:
        """Stream an object to dest (written atomically), verifying its sha256."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Read a small object whole, verifying its sha256."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """The object's recorded sha256 and size, or None when absent."""
        ...

    def exists(self, key: str) -> bool:
        ...

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under prefix (recursive), in sorted order."""
        ...

    def delete(self, key: str) -> None:
        """Remove one object (used only for mutable records such as staging markers)."""
        ...
