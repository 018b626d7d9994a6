"""The embedded default store: a local directory, areas as subdirectories."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from steps.hashing import CHUNK_BYTES, sha256_file
from steps.store.base import StoredObject
from steps.store.errors import IntegrityError, ObjectExists, ObjectNotFound
from steps.store.keys import validate_key

_META_DIR = ".meta"


class LocalStore:
    """Objects live at <root>/<key>; their sha256 and size at <root>/.meta/<key>.json."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.location = f"file://{self.root}"

    # -- paths -------------------------------------------------------------
    def _path(self, key: str) -> Path:
        validate_key(key)
        return self.root / key

    def _meta_path(self, key: str) -> Path:
        return self.root / _META_DIR / (key + ".json")

    # -- writes ------------------------------------------------------------
    def _commit(self, key: str, tmp: Path, sha256: str, size: int, if_absent: bool) -> StoredObject:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        meta = self._meta_path(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        # Metadata first: an object file never exists without its recorded digest.
        _atomic_write(meta, json.dumps({"sha256": sha256, "size_bytes": size}).encode())
        if if_absent:
            try:
                os.link(tmp, dest)  # atomic create-only; fails if dest exists
            except FileExistsError:
                tmp.unlink(missing_ok=True)
                existing = self.stat(key)
                if existing is not None and existing.sha256 != sha256:
                    _atomic_write(meta, json.dumps({"sha256": existing.sha256, "size_bytes": existing.size_bytes}).encode())
                raise ObjectExists(f"{key} already exists; it is never overwritten") from None
            tmp.unlink()
        else:
            os.replace(tmp, dest)
        return StoredObject(key, sha256, size)

    def put_file(self, key: str, path: Path, *, if_absent: bool = False) -> StoredObject:
        dest = self._path(key)
        if if_absent and dest.exists():
            raise ObjectExists(f"{key} already exists; it is never overwritten")
        dest.parent.mkdir(parents=True, exist_ok=True)
        import hashlib

        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            while chunk := src.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        return self._commit(key, Path(tmp_name), digest.hexdigest(), size, if_absent)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> StoredObject:
        dest = self._path(key)
        if if_absent and dest.exists():
            raise ObjectExists(f"{key} already exists; it is never overwritten")
        dest.parent.mkdir(parents=True, exist_ok=True)
        import hashlib

        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        return self._commit(key, Path(tmp_name), hashlib.sha256(data).hexdigest(), len(data), if_absent)

    # -- reads -------------------------------------------------------------
    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            meta = json.loads(self._meta_path(key).read_text())
        except FileNotFoundError:
            raise IntegrityError(f"{key} has no recorded sha256; refusing to trust it") from None
        return StoredObject(key, meta["sha256"], int(meta["size_bytes"]))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

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
        import hashlib

        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, open(self._path(key), "rb") as src:
            while chunk := src.read(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != info.sha256:
            os.unlink(tmp_name)
            raise IntegrityError(
                f"{key} is corrupt: sha256 {digest.hexdigest()} does not match recorded {info.sha256}"
            )
        os.replace(tmp_name, dest)
        return info

    def get_bytes(self, key: str) -> bytes:
        info = self._checked(key)
        data = self._path(key).read_bytes()
        import hashlib

        actual = hashlib.sha256(data).hexdigest()
        if actual != info.sha256:
            raise IntegrityError(f"{key} is corrupt: sha256 {actual} does not match recorded {info.sha256}")
        return data

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = self.root
        start = base / prefix
        search = start if start.is_dir() else start.parent
        if not search.exists():
            return iter(())
        keys = []
        for dirpath, dirnames, filenames in os.walk(search):
            dirnames[:] = [d for d in dirnames if d != _META_DIR]
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), base).replace(os.sep, "/")
                if rel.startswith(prefix) and not rel.startswith(_META_DIR):
                    keys.append(rel)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    def verify_file(self, key: str) -> None:
        """Re-hash an object in place (used by tests and `trainyard verify`)."""
        info = self._checked(key)
        actual = sha256_file(self._path(key))
        if actual != info.sha256:
            raise IntegrityError(f"{key} is corrupt: sha256 {actual} does not match recorded {info.sha256}")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp_name, path)
