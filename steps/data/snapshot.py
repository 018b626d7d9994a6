"""Snapshot a dataset directory into an immutable, content-addressed snapshot.

The dataset hash is the sha256 of the canonical manifest (sorted relative paths, each
file's sha256 and size); it depends on content only, never on mtimes or the source path.
"""
from __future__ import annotations

import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from steps.data.source_tree import (
    PARTITION_RE,
    SnapshotError,
    fd_path,
    list_dataset_files,
    open_source_file,
)
from steps.data.stat_cache import StatCache
from steps.hashing import canonical_json, sha256_bytes, sha256_stream
from steps.store import ArtifactStore, IntegrityError, ObjectExists, validate_name
from steps.store.integrity import ObjectCheck, check_object

__all__ = [  # the listing rules live in source_tree; callers keep importing them from here
    "PARTITION_RE", "Snapshot", "SnapshotError", "SnapshotFile", "SnapshotMismatch", "SnapshotRef",
    "list_dataset_files",
]
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class SnapshotMismatch(IntegrityError):
    """Files no longer match the hashes the snapshot recorded."""


class SnapshotFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
    size_bytes: int

    @field_validator("path")
    @classmethod
    def _inside_the_dataset(cls, path: str) -> str:
        # Materializing writes dest_dir / path: a manifest must not be able to name a place outside it.
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or "\\" in path or any(p in (".", "..") for p in parts) or "//" in path:
            raise ValueError(f"{path!r} is not a relative path inside the dataset")
        if _CONTROL_RE.search(path):
            raise ValueError(f"{path!r} has a control character")
        return path


class Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset: str
    dataset_hash: str
    files: list[SnapshotFile]
    partitions: list[str] = []  # dt=YYYY-MM-DD partitions included, sorted
    as_of: str | None = None

    @property
    def key(self) -> str:
        return snapshot_key(self.dataset, self.dataset_hash)

    def ref(self, *, created: bool = False) -> SnapshotRef:
        return SnapshotRef(dataset=self.dataset, dataset_hash=self.dataset_hash, created=created)

    @property
    def total_size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


class SnapshotRef(BaseModel):
    """A stored snapshot as later tasks name it (the snapshot task's XCom)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    dataset_hash: str
    created: bool = False  # this run stored it (False: it was already stored, or it was pinned)


@dataclass(frozen=True)
class SnapshotOutcome:
    snapshot: Snapshot
    files_hashed: int  # read and hashed in this call (not served by the stat cache)
    blobs_uploaded: int
    bytes_uploaded: int
    created: bool  # False when this exact snapshot was already stored


def snapshot_key(dataset: str, dataset_hash: str) -> str:
    return f"datasets/snapshots/{validate_name('dataset', dataset)}/{dataset_hash}.json"


def blob_key(sha256: str) -> str:
    return f"datasets/blobs/sha256/{sha256[:2]}/{sha256}"


def dataset_hash_of(files: list[SnapshotFile]) -> str:
    ordered = sorted(files, key=lambda f: f.path)
    return sha256_bytes(canonical_json([f.model_dump() for f in ordered]))


def _hash_source_file(source_dir: Path, rel: Path) -> tuple[str, int, os.stat_result]:
    with open_source_file(source_dir, rel) as fd, os.fdopen(fd, "rb", closefd=False) as fh:
        sha256, size_bytes = sha256_stream(fh)
        return sha256, size_bytes, os.fstat(fd)


def hash_files(
    source_dir: Path,
    rel_paths: list[Path],
    *,
    verify: bool = False,
    cache: StatCache | None = None,
    workers: int | None = None,
) -> tuple[list[SnapshotFile], int]:
    """sha256 every file, in parallel threads (hashlib releases the GIL on large reads), each
    opened through source_tree.open_source_file (no link is ever followed).

    Returns the records and how many files were actually read.
    """
    source_dir = Path(source_dir)
    absolute = source_dir.resolve()  # the root may be a link the catalog chose; entries below it never are
    known: dict[int, tuple[str, int]] = {}
    if cache is not None and not verify:
        for i, rel in enumerate(rel_paths):
            st = os.lstat(source_dir / rel)
            sha = cache.lookup(absolute / rel, st) if stat.S_ISREG(st.st_mode) else None
            if sha is not None:
                known[i] = (sha, st.st_size)
    todo = [i for i in range(len(rel_paths)) if i not in known]
    workers = workers or max(2, os.cpu_count() or 2)
    read_stats = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashed = pool.map(lambda i: _hash_source_file(source_dir, rel_paths[i]), todo)
        for i, (sha, size_bytes, st) in zip(todo, hashed, strict=True):
            known[i] = (sha, size_bytes)
            read_stats[i] = st
    if cache is not None:
        cache.store_many([(absolute / rel_paths[i], read_stats[i], known[i][0]) for i in todo])
    records = [
        SnapshotFile(path=rel.as_posix(), sha256=known[i][0], size_bytes=known[i][1])
        for i, rel in enumerate(rel_paths)
    ]
    return records, len(todo)


def build_snapshot(
    dataset: str,
    source_dir: Path,
    *,
    as_of: date | None = None,
    verify: bool = False,
    cache: StatCache | None = None,
) -> tuple[Snapshot, int]:
    validate_name("dataset", dataset)
    rel_paths, partitions = list_dataset_files(Path(source_dir), as_of)
    records, files_hashed = hash_files(Path(source_dir), rel_paths, verify=verify, cache=cache)
    snapshot = Snapshot(
        dataset=dataset,
        dataset_hash=dataset_hash_of(records),
        files=records,
        partitions=partitions,
        as_of=as_of.isoformat() if as_of else None,
    )
    return snapshot, files_hashed


def store_snapshot(store: ArtifactStore, source_dir: Path, snapshot: Snapshot) -> tuple[int, int, bool]:
    """Upload missing blobs, then the snapshot manifest (last). Returns (blobs, bytes, created)."""
    if store.exists(snapshot.key):
        return 0, 0, False
    blobs = 0
    sent_bytes = 0
    for record in snapshot.files:
        key = blob_key(record.sha256)
        if store.stat(key) is not None:
            continue
        try:
            with open_source_file(Path(source_dir), Path(record.path)) as fd:
                stored = store.put_file(key, fd_path(fd), if_absent=True)
        except ObjectExists:
            continue  # a concurrent snapshot uploaded the same content
        if stored.sha256 != record.sha256:
            store.delete(key)
            raise SnapshotMismatch(
                f"{record.path} changed after it was hashed (was {record.sha256[:12]}, now "
                f"{stored.sha256[:12]}); re-run the snapshot"
            )
        blobs += 1
        sent_bytes += stored.size_bytes
    try:
        store.put_bytes(snapshot.key, canonical_json(snapshot.model_dump()), if_absent=True)
    except ObjectExists:
        return blobs, sent_bytes, False
    return blobs, sent_bytes, True


def snapshot_dataset(
    store: ArtifactStore,
    dataset: str,
    source_dir: Path,
    *,
    as_of: date | None = None,
    verify: bool = False,
    cache: StatCache | None = None,
) -> SnapshotOutcome:
    """The `snapshot` step: hash, then store blobs and the manifest (manifest last).

    With verify, every file is re-read (no stat cache) and the stored snapshot is re-read too:
    a stored blob whose bytes no longer match its sha256 raises SnapshotMismatch naming it."""
    snapshot, files_hashed = build_snapshot(dataset, source_dir, as_of=as_of, verify=verify, cache=cache)
    blobs, sent_bytes, created = store_snapshot(store, source_dir, snapshot)
    if verify:
        raise_if_corrupt(store, snapshot)
    return SnapshotOutcome(snapshot, files_hashed, blobs, sent_bytes, created)


def load_snapshot(store: ArtifactStore, dataset: str, dataset_hash: str) -> Snapshot:
    try:
        snapshot = Snapshot.model_validate_json(store.get_bytes(snapshot_key(dataset, dataset_hash)))
    except ValidationError as err:
        problem = err.errors()[0]
        raise SnapshotMismatch(
            f"snapshot manifest of {dataset}@{dataset_hash[:12]} is malformed: "
            f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
        ) from None
    if dataset_hash_of(snapshot.files) != dataset_hash:
        raise SnapshotMismatch(f"snapshot manifest of {dataset}@{dataset_hash[:12]} does not hash to its name")
    return snapshot


def corrupt_blobs(store: ArtifactStore, snapshot: Snapshot) -> list[tuple[SnapshotFile, ObjectCheck]]:
    """Every file of the snapshot whose stored blob is missing or no longer hashes to its sha256."""
    checked: dict[str, ObjectCheck] = {}
    bad = []
    for record in snapshot.files:
        if record.sha256 not in checked:
            checked[record.sha256] = check_object(store, blob_key(record.sha256), record.sha256)
        if not checked[record.sha256].ok:
            bad.append((record, checked[record.sha256]))
    return bad


def raise_if_corrupt(store: ArtifactStore, snapshot: Snapshot) -> None:
    load_snapshot(store, snapshot.dataset, snapshot.dataset_hash)  # the stored manifest itself
    bad = corrupt_blobs(store, snapshot)
    if bad:
        shown = "; ".join(f"{record.path}: {check.problem}" for record, check in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise SnapshotMismatch(
            f"stored snapshot {snapshot.dataset}@{snapshot.dataset_hash[:12]} is corrupt: {shown}{more}; "
            f"run `trainyard verify --dataset {snapshot.dataset}@{snapshot.dataset_hash} --repair-from-source`"
        )


def materialize_snapshot(store: ArtifactStore, snapshot: Snapshot, dest_dir: Path) -> Path:
    """Download a snapshot's files and re-verify every hash; refuse any mismatch."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for record in snapshot.files:
        target = dest_dir / record.path
        store.get_file(blob_key(record.sha256), target)
    actual, _ = hash_files(dest_dir, [Path(f.path) for f in snapshot.files], verify=True)
    for expected, got in zip(snapshot.files, actual, strict=True):
        if expected.sha256 != got.sha256:
            raise SnapshotMismatch(
                f"{snapshot.dataset}@{snapshot.dataset_hash[:12]}: {expected.path} has sha256 "
                f"{got.sha256[:12]}, expected {expected.sha256[:12]}"
            )
    if dataset_hash_of(actual) != snapshot.dataset_hash:
        raise SnapshotMismatch(f"{snapshot.dataset}: materialized files do not hash to {snapshot.dataset_hash}")
    return dest_dir

