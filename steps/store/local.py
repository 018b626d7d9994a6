"""The embedded default store: a local directory.

Every object's bytes live once, content-addressed, at <root>/.objects/<sha256>; a key is
a symlink <root>/<key> -> that file. Publishing, create-only writes and overwrites are
each one atomic filesystem operation (symlink or rename), so a reader never sees a key
whose recorded digest and bytes disagree, and two writers can never interleave.

A content object, once written, is never written again: identical content is shared by every
key naming it (a registered version's weights and the run's that produced them), so rewriting it
would silently change, or silently heal, all of them. A write whose content already exists checks
that the existing bytes still hash to their name and refuses loudly when they do not. The one
sanctioned rewrite is `restore_content`, with bytes proven to hash to the recorded sha256
(`trainyard verify --repair-from-source`).
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
from steps.store.errors import CorruptContent, IntegrityError, ObjectChanged, ObjectExists, ObjectNotFound
from steps.store.keys import validate_key

_OBJECTS_DIR = ".objects"
_LOCKS_DIR = ".locks"
_PUBLISH_ATTEMPTS = 3


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
    def _write_temp(self, path: Path | None, data: bytes | None) -> tuple[str, str, int]:
        """Copy a file (or bytes) into a fsynced temp file under .objects: (temp name, sha256, size)."""
        fd, tmp_name = tempfile.mkstemp(dir=self._objects(), prefix=".tmp-")
        digest = streaming_sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                if data is not None:
                    digest.update(data)
                    out.write(data)
                    size = len(data)
                else:
                    assert path is not None
                    with open(path, "rb") as src:
                        while chunk := src.read(CHUNK_BYTES):
                            digest.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return tmp_name, digest.hexdigest(), size

    def _ingest(self, key: str, path: Path | None = None, data: bytes | None = None) -> tuple[str, int]:
        """File the bytes under .objects by sha256, create-only."""
        tmp_name, sha256, size = self._write_temp(path, data)
        try:
            os.link(tmp_name, self.root / _OBJECTS_DIR / sha256)  # atomic, and never replaces existing content
        except FileExistsError:
            self._check_existing_content(key, sha256, size)
        finally:
            os.unlink(tmp_name)
        return sha256, size

    def _check_existing_content(self, key: str, sha256: str, size: int) -> None:
        existing = self.root / _OBJECTS_DIR / sha256
        if existing.stat().st_size == size:
            digest = streaming_sha256()
            with open(existing, "rb") as src:
                while chunk := src.read(CHUNK_BYTES):
                    digest.update(chunk)
            if digest.hexdigest() == sha256:
                return
        raise IntegrityError(
            f"cannot write {key}: the store already holds its content ({sha256[:12]}) at {existing}, "
            "and those bytes are corrupt; shared content is never overwritten. "
            "Run `trainyard verify --all` to see what references it"
        )

    def restore_content(self, key: str, path: Path) -> StoredObject:
        """Rewrite the content behind `key` from `path`, which must hash to the key's recorded sha256."""
        info = self._checked(key)
        tmp_name, sha256, size = self._write_temp(path, None)
        try:
            if sha256 != info.sha256:
                raise IntegrityError(
                    f"cannot restore {key}: {path} hashes to {sha256[:12]}, the store recorded {info.sha256[:12]}"
                )
            os.replace(tmp_name, self.root / _OBJECTS_DIR / sha256)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        return StoredObject(key, sha256, size)

    def _publish(self, key: str, sha256: str, size: int, if_absent: bool) -> StoredObject:
        dest = self._path(key)
        target = os.path.relpath(self.root / _OBJECTS_DIR / sha256, dest.parent)
        for attempt in range(_PUBLISH_ATTEMPTS):
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                self._link(dest, target, key, if_absent)
                return StoredObject(key, sha256, size)
            except FileNotFoundError:  # a delete pruned the emptied directory between mkdir and link
                if attempt == _PUBLISH_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _link(dest: Path, target: str, key: str, if_absent: bool) -> None:
        if if_absent:
            try:
                os.symlink(target, dest)  # atomic create-only
            except FileExistsError:
                raise ObjectExists(f"{key} already exists; it is never overwritten") from None
        else:
            tmp_link = dest.parent / f".tmp-link-{os.getpid()}-{os.urandom(4).hex()}"
            os.symlink(target, tmp_link)
            os.replace(tmp_link, dest)  # atomic overwrite

    def put_file(self, key: str, path: Path, *, if_absent: bool = False) -> StoredObject:
        if if_absent and os.path.lexists(self._path(key)):
            raise ObjectExists(f"{key} already exists; it is never overwritten")
        sha256, size = self._ingest(key, path=path)
        return self._publish(key, sha256, size, if_absent)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> StoredObject:
        if if_absent and os.path.lexists(self._path(key)):
            raise ObjectExists(f"{key} already exists; it is never overwritten")
        sha256, size = self._ingest(key, data=data)
        return self._publish(key, sha256, size, if_absent)

    def compare_and_swap(self, key: str, data: bytes, *, expected_sha256: str | None) -> StoredObject:
        self._path(key)  # validates the key before anything is written
        sha256, size = self._ingest(key, data=data)  # content first, outside the lock
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
            raise CorruptContent(key, info.sha256, digest.hexdigest())
        os.replace(tmp_name, dest)
        return info

    def get_bytes(self, key: str) -> bytes:
        info = self._checked(key)
        data = self._path(key).read_bytes()
        actual = sha256_bytes(data)
        if actual != info.sha256:
            raise CorruptContent(key, info.sha256, actual)
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
        # Content under .objects may be shared by other keys; only the key goes, and the directories
        # it leaves empty (a removed scratch run leaves no empty tree behind).
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        area = self.root / key.split("/", 1)[0]
        parent = path.parent
        while parent != area and parent.is_relative_to(area):
            try:
                parent.rmdir()
            except OSError:  # not empty (or already gone): stop pruning
                return
            parent = parent.parent
