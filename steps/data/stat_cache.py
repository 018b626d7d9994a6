"""A stat cache (size, mtime, ctime, inode -> sha256), as git and DVC keep, so an
unchanged file is not re-read on re-snapshot. `verify=True` callers bypass it."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_hash (
    path TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT NOT NULL
)
"""


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class StatCache:
    def __init__(self, path: Path | None = None):
        from steps.store.settings import trainyard_home

        self.path = Path(path or os.environ.get("TRAINYARD_STAT_CACHE") or trainyard_home() / "stat-cache.sqlite")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute(_SCHEMA)

    def lookup(self, path: Path, st: os.stat_result) -> str | None:
        row = self._db.execute(
            "SELECT size_bytes, mtime_ns, ctime_ns, inode, sha256 FROM file_hash WHERE path = ?",
            (str(path),),
        ).fetchone()
        if row is None or tuple(row[:4]) != stat_key(st):
            return None
        return row[4]

    def store_many(self, entries: list[tuple[Path, os.stat_result, str]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO file_hash VALUES (?, ?, ?, ?, ?, ?)",
                [(str(p), *stat_key(st), sha) for p, st, sha in entries],
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StatCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
