"""A dataset can hold only its own regular files: links and special files are refused, by name,
and nothing is ever read through a link, even one swapped in after the directory was listed."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from steps.data import snapshot as snapshot_module
from steps.data.snapshot import (
    Snapshot,
    SnapshotError,
    SnapshotMismatch,
    load_snapshot,
    snapshot_dataset,
    snapshot_key,
)
from steps.hashing import canonical_json, sha256_bytes
from tests.conftest import run_cli

SECRET = b"root:x:0:0:the secret outside the dataset\n"


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "toy"
    (root / "dt=2026-01-19").mkdir(parents=True)
    (root / "labels.csv").write_bytes(b"id,name\n0,a\n")
    (root / "dt=2026-01-19" / "examples.csv").write_bytes(b"id,label\n1,0\n")
    return root


@pytest.fixture
def outside(tmp_path) -> Path:
    secret = tmp_path / "outside" / "passwd"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    return secret


def stored_anywhere(store, data: bytes) -> bool:
    objects = store.root / ".objects"
    return objects.is_dir() and any(p.read_bytes() == data for p in objects.iterdir() if p.is_file())


def refused(store, dataset, *words, blobs_before_refusal: bool = False):
    with pytest.raises(SnapshotError) as err:
        snapshot_dataset(store, "toy", dataset)
    for word in words:
        assert word in str(err.value), str(err.value)
    assert not list(store.list_keys("datasets/snapshots/"))  # no snapshot exists
    if not blobs_before_refusal:
        assert not list(store.list_keys("datasets/"))  # refused before anything was stored
    return str(err.value)


def test_a_link_to_a_file_outside_the_dataset_is_refused_and_its_bytes_never_stored(local_store, dataset, outside):
    (dataset / "dt=2026-01-19" / "x.csv").symlink_to(outside)
    message = refused(local_store, dataset, "dt=2026-01-19/x.csv", "symbolic link", str(outside))
    assert "\n" not in message
    assert not stored_anywhere(local_store, SECRET)


def test_an_examples_file_that_is_a_link_is_refused(local_store, dataset, outside):
    examples = dataset / "dt=2026-01-19" / "examples.csv"
    examples.unlink()
    examples.symlink_to(outside)
    refused(local_store, dataset, "dt=2026-01-19/examples.csv", "symbolic link")


def test_a_link_to_a_directory_outside_the_dataset_is_refused_not_skipped(local_store, dataset, outside):
    (dataset / "dt=2026-01-20").symlink_to(outside.parent, target_is_directory=True)
    refused(local_store, dataset, "dt=2026-01-20", "symbolic link")


def test_a_link_that_stays_inside_the_dataset_is_refused_too(local_store, dataset):
    (dataset / "copy.csv").symlink_to("labels.csv")
    refused(local_store, dataset, "copy.csv", "symbolic link")


def test_a_fifo_is_refused_instead_of_hanging_the_snapshot(store_root, dataset):
    os.mkfifo(dataset / "dt=2026-01-19" / "pipe.csv")
    # In a child process: without the check, open() blocks forever in a thread no timeout can stop.
    out = run_cli("snapshot", "toy", "--source", str(dataset), timeout=120)
    assert out.returncode == 2 and "dt=2026-01-19/pipe.csv is a FIFO" in out.stderr


def test_a_socket_is_refused(local_store, tmp_path):
    root = tmp_path / "s"  # AF_UNIX paths are limited to ~100 bytes: keep this one short
    root.mkdir()
    (root / "labels.csv").write_bytes(b"id,name\n0,a\n")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        refused(local_store, root, "sock", "socket")


def test_a_name_with_a_newline_is_refused(local_store, dataset):
    (dataset / "evil\nsnapshot ok.csv").write_bytes(b"x\n")
    refused(local_store, dataset, "control character")


def test_a_hard_link_is_snapshotted_as_the_regular_file_it_is(local_store, dataset, tmp_path):
    shared = tmp_path / "shared.csv"
    shared.write_bytes(b"id,name\n0,shared\n")
    os.link(shared, dataset / "extra.csv")
    snap = snapshot_dataset(local_store, "toy", dataset).snapshot
    assert {f.path for f in snap.files} == {"labels.csv", "dt=2026-01-19/examples.csv", "extra.csv"}


def swap_after(monkeypatch, step: str, swap) -> None:
    """Run `swap()` right after the snapshot module's `step` returns: the race an attacker would try."""
    real = getattr(snapshot_module, step)

    def then_swap(*args, **kwargs):
        result = real(*args, **kwargs)
        swap()
        return result

    monkeypatch.setattr(snapshot_module, step, then_swap)


def link_instead(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target)


def test_a_file_swapped_for_a_link_after_listing_is_refused_when_hashed(local_store, dataset, outside, monkeypatch):
    swap_after(monkeypatch, "list_dataset_files", lambda: link_instead(dataset / "labels.csv", outside))
    refused(local_store, dataset, "labels.csv", "symbolic link")
    assert not stored_anywhere(local_store, SECRET)


def test_a_directory_swapped_for_a_link_after_listing_is_refused(local_store, dataset, outside, monkeypatch):
    (outside.parent / "examples.csv").write_bytes(SECRET)
    partition = dataset / "dt=2026-01-19"

    def swap():
        partition.rename(dataset.parent / "moved-away")
        partition.symlink_to(outside.parent, target_is_directory=True)

    swap_after(monkeypatch, "list_dataset_files", swap)
    refused(local_store, dataset, "dt=2026-01-19", "no longer a directory")
    assert not stored_anywhere(local_store, SECRET)


def test_a_file_swapped_for_a_link_between_hashing_and_upload_is_not_uploaded(local_store, dataset, outside, monkeypatch):
    swap_after(monkeypatch, "build_snapshot", lambda: link_instead(dataset / "labels.csv", outside))
    # Blobs of files uploaded before it may stay (content-addressed, unreferenced); the link's never is.
    refused(local_store, dataset, "labels.csv", "symbolic link", blobs_before_refusal=True)
    assert not stored_anywhere(local_store, SECRET)


def test_a_stored_snapshot_naming_a_path_outside_the_dataset_is_refused_on_load(local_store):
    files = [{"path": "../../escaped.csv", "sha256": sha256_bytes(b"x"), "size_bytes": 1}]
    dataset_hash = sha256_bytes(canonical_json(files))  # a forged manifest that hashes to its own name
    local_store.put_bytes(snapshot_key("toy", dataset_hash), canonical_json(
        {"dataset": "toy", "dataset_hash": dataset_hash, "files": files, "partitions": [], "as_of": None}
    ))
    with pytest.raises(SnapshotMismatch, match="malformed.*not a relative path inside"):
        load_snapshot(local_store, "toy", dataset_hash)
    with pytest.raises(ValueError, match="not a relative path inside"):
        Snapshot.model_validate({"dataset": "toy", "dataset_hash": dataset_hash, "files": files})


def test_the_cli_names_the_link_in_one_line_with_exit_code_2(store_root, dataset, outside):
    (dataset / "dt=2026-01-19" / "x.csv").symlink_to(outside)
    out = run_cli("snapshot", "toy", "--source", str(dataset))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "dt=2026-01-19/x.csv is a symbolic link" in out.stderr
