"""The snapshot step: content addressing, immutability, stat cache and partitions."""
from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from steps.data.snapshot import (
    SnapshotError,
    SnapshotMismatch,
    blob_key,
    load_snapshot,
    materialize_snapshot,
    snapshot_dataset,
)
from steps.data.stat_cache import StatCache
from steps.store.keys import InvalidName


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


FILES = {"labels.csv": b"id,name\n0,a\n", "dt=2026-01-01/examples.csv": b"x\n1\n", "dt=2026-02-01/examples.csv": b"x\n2\n"}


def test_same_content_gives_same_hash_whatever_order_mtime_or_path(tmp_path, local_store):
    first = make_tree(tmp_path / "a", FILES)
    second = make_tree(tmp_path / "elsewhere" / "b", dict(reversed(list(FILES.items()))))
    os.utime(second / "labels.csv", (1_000_000, 1_000_000))
    h1 = snapshot_dataset(local_store, "toy", first).snapshot.dataset_hash
    h2 = snapshot_dataset(local_store, "toy", second).snapshot.dataset_hash
    assert h1 == h2 and len(h1) == 64


def test_changing_one_byte_gives_a_new_hash(tmp_path, local_store):
    src = make_tree(tmp_path / "a", FILES)
    before = snapshot_dataset(local_store, "toy", src).snapshot.dataset_hash
    (src / "labels.csv").write_bytes(b"id,name\n0,b\n")
    after = snapshot_dataset(local_store, "toy", src, verify=True).snapshot.dataset_hash
    assert before != after


def test_resnapshot_of_unchanged_data_stores_nothing_new(tmp_path, local_store):
    src = make_tree(tmp_path / "a", FILES)
    first = snapshot_dataset(local_store, "toy", src)
    keys_before = list(local_store.list_keys("datasets/"))
    second = snapshot_dataset(local_store, "toy", src)
    assert first.created and first.blobs_uploaded == 3
    assert not second.created and second.blobs_uploaded == 0 and second.bytes_uploaded == 0
    assert list(local_store.list_keys("datasets/")) == keys_before


def test_stat_cache_skips_rereading_unchanged_files_but_sees_a_modified_one(tmp_path, local_store):
    src = make_tree(tmp_path / "a", FILES)
    cache = StatCache(tmp_path / "cache.sqlite")
    first = snapshot_dataset(local_store, "toy", src, cache=cache)
    again = snapshot_dataset(local_store, "toy", src, cache=cache)
    assert first.files_hashed == 3 and again.files_hashed == 0
    (src / "dt=2026-02-01/examples.csv").write_bytes(b"x\n3\n")
    changed = snapshot_dataset(local_store, "toy", src, cache=cache)
    assert changed.files_hashed == 1
    assert changed.snapshot.dataset_hash != first.snapshot.dataset_hash


def test_verify_rereads_everything_despite_the_cache(tmp_path, local_store):
    src = make_tree(tmp_path / "a", FILES)
    cache = StatCache(tmp_path / "cache.sqlite")
    snapshot_dataset(local_store, "toy", src, cache=cache)
    assert snapshot_dataset(local_store, "toy", src, cache=cache, verify=True).files_hashed == 3


def test_as_of_includes_only_partitions_up_to_that_date(tmp_path, local_store):
    src = make_tree(tmp_path / "a", FILES)
    jan = snapshot_dataset(local_store, "toy", src, as_of=date(2026, 1, 15)).snapshot
    assert jan.partitions == ["dt=2026-01-01"]
    assert [f.path for f in jan.files] == ["dt=2026-01-01/examples.csv", "labels.csv"]
    full = snapshot_dataset(local_store, "toy", src, as_of=date(2026, 3, 1)).snapshot
    assert full.partitions == ["dt=2026-01-01", "dt=2026-02-01"] and full.dataset_hash != jan.dataset_hash


def test_empty_or_missing_dataset_is_refused_with_its_path(tmp_path, local_store):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SnapshotError, match="has no files"):
        snapshot_dataset(local_store, "toy", tmp_path / "empty")
    with pytest.raises(SnapshotError, match="does not exist"):
        snapshot_dataset(local_store, "toy", tmp_path / "missing")
    dated_only = make_tree(tmp_path / "dated", {"dt=2026-01-01/examples.csv": b"x\n1\n"})
    with pytest.raises(SnapshotError, match="no files up to 2025-01-01"):
        snapshot_dataset(local_store, "toy", dated_only, as_of=date(2025, 1, 1))
    assert not list(local_store.list_keys("datasets/snapshots/"))


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", "..", "UPPER"])
def test_dataset_name_that_would_escape_the_store_is_refused(tmp_path, local_store, name):
    src = make_tree(tmp_path / "a", FILES)
    before = sorted(p for p in tmp_path.parent.rglob("*"))
    with pytest.raises(InvalidName, match="dataset name"):
        snapshot_dataset(local_store, name, src)
    assert sorted(p for p in tmp_path.parent.rglob("*")) == before  # nothing written anywhere


def test_file_changed_after_hashing_is_refused_and_not_stored(tmp_path, local_store, monkeypatch):
    from steps.data import snapshot as snapshot_module

    src = make_tree(tmp_path / "a", FILES)
    real_build = snapshot_module.build_snapshot

    def build_then_modify(*args, **kwargs):
        result = real_build(*args, **kwargs)
        (src / "labels.csv").write_bytes(b"tampered after hashing\n")
        return result

    monkeypatch.setattr(snapshot_module, "build_snapshot", build_then_modify)
    with pytest.raises(SnapshotMismatch, match="labels.csv changed after it was hashed"):
        snapshot_dataset(local_store, "toy", src)
    assert not list(local_store.list_keys("datasets/snapshots/"))


def test_materialized_snapshot_is_reverified_and_tampering_is_refused(tmp_path, local_store):
    src = make_tree(tmp_path / "a", FILES)
    snap = snapshot_dataset(local_store, "toy", src).snapshot
    out = materialize_snapshot(local_store, load_snapshot(local_store, "toy", snap.dataset_hash), tmp_path / "out")
    assert (out / "labels.csv").read_bytes() == FILES["labels.csv"]
    blob = local_store.root / blob_key(snap.files[-1].sha256)
    blob.write_bytes(b"bit rot")
    shutil.rmtree(tmp_path / "out")
    with pytest.raises(Exception, match="corrupt|does not match"):
        materialize_snapshot(local_store, snap, tmp_path / "out")
