"""Re-reading stored objects against their recorded sha256 (and, optionally, the sha256 a manifest
pins them to), and putting back a corrupt object's bytes from a file proven to be the original.
Backend-agnostic: it reads through the store interface, so a check means what a reader would see."""
from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.hashing import sha256_stream
from steps.store.base import ArtifactStore, StoredObject
from steps.store.errors import CorruptContent, IntegrityError, ObjectNotFound


class ObjectCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    ok: bool
    problem: str = ""  # empty when ok; else one line a person can act on
    recorded_sha256: str | None = None  # what the store recorded at write time
    actual_sha256: str | None = None  # what the bytes hash to now, when they could be read
    size_bytes: int = 0


def check_object(store: ArtifactStore, key: str, expected_sha256: str | None = None) -> ObjectCheck:
    """Read `key` whole and say whether its bytes still hash to the recorded sha256, and whether
    that is the sha256 a manifest pins (`expected_sha256`). Never raises for a bad object."""
    try:
        info = store.stat(key)
    except IntegrityError as err:
        return ObjectCheck(key=key, ok=False, problem=str(err))
    if info is None:
        return ObjectCheck(key=key, ok=False, problem="missing", recorded_sha256=None)
    if expected_sha256 is not None and info.sha256 != expected_sha256:
        return ObjectCheck(
            key=key, ok=False, recorded_sha256=info.sha256,
            problem=f"the store holds content {info.sha256[:12]}, but the manifest pins {expected_sha256[:12]}",
        )
    with tempfile.TemporaryDirectory(prefix="trainyard-verify-") as tmp:
        try:
            store.get_file(key, Path(tmp) / "object")
        except CorruptContent as err:
            return ObjectCheck(
                key=key, ok=False, recorded_sha256=info.sha256, actual_sha256=err.actual_sha256,
                problem=f"its bytes hash to {err.actual_sha256[:12]}, not the recorded {info.sha256[:12]}",
                size_bytes=info.size_bytes,
            )
        except (IntegrityError, ObjectNotFound) as err:
            return ObjectCheck(key=key, ok=False, recorded_sha256=info.sha256, problem=str(err))
    return ObjectCheck(key=key, ok=True, recorded_sha256=info.sha256, actual_sha256=info.sha256,
                       size_bytes=info.size_bytes)


def restore_object(store: ArtifactStore, key: str, path: Path) -> StoredObject:
    """Put back the bytes of `key` from `path`, refusing unless they hash to the key's recorded
    sha256: a repair can only ever restore the original, never change it."""
    info = store.stat(key)
    if info is None:
        raise ObjectNotFound(f"{key} not found in {store.location}")
    with open(path, "rb") as fh:
        actual, _ = sha256_stream(fh)
    if actual != info.sha256:
        raise IntegrityError(f"cannot restore {key}: {path} hashes to {actual[:12]}, the store recorded {info.sha256[:12]}")
    from steps.store.local import LocalStore

    if isinstance(store, LocalStore):  # its content is shared by name: rewrite the one content file
        return store.restore_content(key, path)
    return store.put_file(key, path)  # elsewhere each key holds its own bytes
