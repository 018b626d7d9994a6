"""Snapshot a dataset directory into an immutable, content-addressed snapshot.

The dataset hash is the sha256 of the canonical manifest (sorted relative paths, each
file's sha256 and size); it depends on content only, never on mtimes or the source path.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.data.stat_cache import StatCache
from steps.hashing import canonical_json, sha256_bytes, sha256_file
from steps.store import ArtifactStore, IntegrityError, ObjectExists, validate_name

PARTITION_RE = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


class SnapshotError(ValueError):
    """The dataset cannot be snapshotted as given."""


class SnapshotMismatch(IntegrityError):
    """Files no longer match the hashes the snapshot recorded."""


class SnapshotFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
    size_bytes: int


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


def _partition_date(partition: str) -> date:
    match = PARTITION_RE.match(partition)
    if match is None:
        raise SnapshotError(f"{partition!r} is not a dt=YYYY-MM-DD partition")
    return date.fromisoformat(match.group(1))


def list_dataset_files(source_dir: Path, as_of: date | None = None) -> tuple[list[Path], list[str]]:
    """Relative paths to include, and the dated partitions they come from.

    Files under `dt=YYYY-MM-DD/` are included only when that date is <= as_of, so a run
    for a past date sees the data as it was then. Other files are always included.
    """
    source_dir = Path(source_dir)
    if not source_dir.exists():
        raise SnapshotError(f"dataset source {source_dir} does not exist")
    if not source_dir.is_dir():
        raise SnapshotError(f"dataset source {source_dir} is not a directory")
    files: list[Path] = []
    partitions: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(source_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(source_dir)
        partition = next((p for p in rel_dir.parts if PARTITION_RE.match(p)), None)
        if partition is not None and as_of is not None:
            if _partition_date(partition) > as_of:
                continue
        for name in filenames:
            if name.startswith("."):
                continue
            rel = rel_dir / name
            files.append(rel)
            if partition is not None:
                partitions.add(partition)
    if not files:
        when = f" up to {as_of.isoformat()}" if as_of else ""
        raise SnapshotError(f"dataset source {source_dir} has no files{when}")
    if as_of is not None and not partitions and _has_partitions(source_dir):
        raise SnapshotError(
            f"dataset source {source_dir} has no dt= partitions up to {as_of.isoformat()}; "
            f"the earliest is {min(_partition_names(source_dir))}"
        )
    return sorted(files, key=lambda p: p.as_posix()), sorted(partitions)


def _partition_names(source_dir: Path) -> list[str]:
    return [p.name for p in Path(source_dir).iterdir() if p.is_dir() and PARTITION_RE.match(p.name)]


def _has_partitions(source_dir: Path) -> bool:
    return bool(_partition_names(source_dir))


def hash_files(
    source_dir: Path,
    rel_paths: list[Path],
    *,
    verify: bool = False,
    cache: StatCache | None = None,
    workers: int | None = None,
) -> tuple[list[SnapshotFile], int]:
    """sha256 every file, in parallel threads (hashlib releases the GIL on large reads).

    Returns the records and how many files were actually read.
    """
    stats = [os.stat(source_dir / rel) for rel in rel_paths]
    known: dict[int, str] = {}
    if cache is not None and not verify:
        for i, rel in enumerate(rel_paths):
            sha = cache.lookup((source_dir / rel).resolve(), stats[i])
            if sha is not None:
                known[i] = sha
    todo = [i for i in range(len(rel_paths)) if i not in known]
    workers = workers or max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, sha in zip(todo, pool.map(lambda i: sha256_file(source_dir / rel_paths[i]), todo), strict=True):
            known[i] = sha
    if cache is not None:
        cache.store_many([((source_dir / rel_paths[i]).resolve(), stats[i], known[i]) for i in todo])
    records = [
        SnapshotFile(path=rel.as_posix(), sha256=known[i], size_bytes=stats[i].st_size)
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
            stored = store.put_file(key, Path(source_dir) / record.path, if_absent=True)
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
    """The `snapshot` step: hash, then store blobs and the manifest (manifest last)."""
    snapshot, files_hashed = build_snapshot(dataset, source_dir, as_of=as_of, verify=verify, cache=cache)
    blobs, sent_bytes, created = store_snapshot(store, source_dir, snapshot)
    return SnapshotOutcome(snapshot, files_hashed, blobs, sent_bytes, created)


def load_snapshot(store: ArtifactStore, dataset: str, dataset_hash: str) -> Snapshot:
    snapshot = Snapshot.model_validate_json(store.get_bytes(snapshot_key(dataset, dataset_hash)))
    if dataset_hash_of(snapshot.files) != dataset_hash:
        raise SnapshotMismatch(f"snapshot manifest of {dataset}@{dataset_hash[:12]} does not hash to its name")
    return snapshot


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

