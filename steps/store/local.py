"""The embedded default store: a local directory.

Every object's bytes live once, content-addressed, at <root>/.objects/<sha256>; a key is
a symlink <root>/<key> -> that file. Publishing, create-only writes and overwrites are
each one atomic filesystem operation (symlink or rename), so a reader never sees a key
whose recorded digest and bytes disagree, and two writers can never interleave.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from steps.hashing import CHUNK_BYTES, sha256_bytes, streaming_sha256
from steps.store.base import StoredObject
from steps.store.errors import IntegrityError, ObjectChanged, ObjectExists, ObjectNotFound
from steps.store.keys import validate_key

_OBJECTS_DIR = ".objects"
_LOCKS_DIR = ".locks"


class LocalStore:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.location = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        validate_key(key)
        return self.root / key

    def _objects(self) -> Path:
        path = self.root / _OBJECTS_DIR
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- writes ------------------------------------------------------------
    def _ingest(self, write) -> tuple[str, int]:
        """Write bytes to a temp file via `write(fh, digest)`, then file them by sha256."""
        objects = self._objects()
        fd, tmp_name = tempfile.mkstemp(dir=objects, prefix=".tmp-")
        digest = streaming_sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                size = write(out, digest)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, objects / digest.hexdigest())
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return digest.hexdigest(), size

    def _publish(self, key: str, sha256: str, size: int, if_absent: bool) -> StoredObject:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(self.root / _OBJECTS_DIR / sha256, dest.parent)
        if if_absent:
            try:
                os.symlink(target, dest)  # atomic create-only
            except FileExistsError:
                raise ObjectExists(f"{key} already exists; it is never overwritten") from None
        else:
            tmp_link = dest.parent / f".tmp-link-{os.getpid()}-{os.urandom(4).hex()}"
            os.symlink(target, tmp_link)
            os.replace(tmp_link, dest)  # atomic overwrite
        return StoredObject(key, sha256, size)

    def put_file(self, key: str, path: Path, *, if_absent: bool = False) -> StoredObject:
        if if_absent and os.path.lexists(self._path(key)):
            raise ObjectExists(f"{key} already exists; it is never overwritten")

        def copy(out, digest):
            size = 0
            with open(path, "rb") as src:
                while chunk := src.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            return size

        sha256, size = self._ingest(copy)
        return self._publish(key, sha256, size, if_absent)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> StoredObject:
        if if_absent and os.path.lexists(self._path(key)):
            raise ObjectExists(f"{key} already exists; it is never overwritten")

        def write(out, digest):
            digest.update(data)
            out.write(data)
            return len(data)

        sha256, size = self._ingest(write)
        return self._publish(key, sha256, size, if_absent)

    def compare_and_swap(self, key: str, data: bytes, *, expected_sha256: str | None) -> StoredObject:
        self._path(key)  # validates the key before anything is written

        def write(out, digest):
            digest.update(data)
            out.write(data)
            return len(data)

        sha256, size = self._ingest(write)  # content first, outside the lock
        with self._key_lock(key):
            current = self.stat(key)
            if (current.sha256 if current else None) != expected_sha256:
                held = f"sha256 {current.sha256[:12]}" if current else "nothing"
                wanted = f"sha256 {expected_sha256[:12]}" if expected_sha256 else "nothing"
                raise ObjectChanged(f"{key} changed since it was read: it holds {held}, expected {wanted}")
            try:
                # Absent: create-only, so even a plain if_absent writer cannot be clobbered.
                return self._publish(key, sha256, size, if_absent=expected_sha256 is None)
            except ObjectExists:
                raise ObjectChanged(f"{key} changed since it was read: it was created by another writer") from None

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        """An exclusive lock on one key, across processes (flock on a file named by the key's hash)."""
        locks = self.root / _LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / sha256_bytes(key.encode()), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- reads -------------------------------------------------------------
    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            target = os.readlink(path)
        except FileNotFoundError:
            return None
        except OSError:
            raise IntegrityError(f"{key} is not a store object (not written through the store)") from None
        sha256 = os.path.basename(target)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise IntegrityError(f"{key} points at missing content {sha256[:12]}") from None
        return StoredObject(key, sha256, size)

    def exists(self, key: str) -> bool:
        return os.path.lexists(self._path(key))

    def _checked(self, key: str) -> StoredObject:
        info = self.stat(key)
        if info is None:
            raise ObjectNotFound(f"{key} not found in {self.location}")
        return info

    def get_file(self, key: str, dest: Path) -> StoredObject:
        info = self._checked(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        digest = streaming_sha256()
        try:
            with os.fdopen(fd, "wb") as out, open(self._path(key), "rb") as src:
                while chunk := src.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        if digest.hexdigest() != info.sha256:
            os.unlink(tmp_name)
            raise IntegrityError(f"{key} is corrupt: sha256 {digest.hexdigest()} does not match recorded {info.sha256}")
        os.replace(tmp_name, dest)
        return info

    def get_bytes(self, key: str) -> bytes:
        info = self._checked(key)
        data = self._path(key).read_bytes()
        actual = sha256_bytes(data)
        if actual != info.sha256:
            raise IntegrityError(f"{key} is corrupt: sha256 {actual} does not match recorded {info.sha256}")
        return data

    def list_keys(self, prefix: str) -> Iterator[str]:
        start = self.root / prefix
        search = start if start.is_dir() else start.parent
        if not search.exists():
            return iter(())
        keys = []
        for dirpath, dirnames, filenames in os.walk(search):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if rel.startswith(prefix):
                    keys.append(rel)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        # Content under .objects may be shared by other keys; only the key goes.
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
