"""A tampered model or snapshot is noticed by every command that reads it, named with what it
reaches, and never silently repaired; a snapshot blob can be restored from an unchanged source."""
from __future__ import annotations

import pytest

from steps.data.snapshot import blob_key, snapshot_dataset
from steps.hashing import sha256_bytes
from tests.conftest import run_cli
from tests.pipeline_fixtures import make_plan, snapshot_of
from tests.test_register import register, trainer_outputs

EXIT_CORRUPT = 4
MODEL = "digits-digits-cnn"
WEIGHTS = b"weights both versions share"


def flip_a_byte(path) -> bytes:
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


def two_versions_sharing_weights(store):
    """v1, then v2 (the champion) with byte-identical weights: the store keeps that content once."""
    snapshot = snapshot_of(store)
    for i, promote in ((1, False), (2, True)):
        plan = make_plan(f"shared-{i}")
        register(store, plan, snapshot, trainer_outputs(store, plan, WEIGHTS), promote=promote)
    return store.root / ".objects" / sha256_bytes(WEIGHTS)


def test_verify_names_the_corrupt_weights_and_every_version_they_reach(local_store):
    tampered = flip_a_byte(two_versions_sharing_weights(local_store))
    out = run_cli("verify", f"{MODEL}@1")
    assert out.returncode == EXIT_CORRUPT and "Traceback" not in out.stderr
    assert f"CORRUPT models/{MODEL}/versions/1/weights.safetensors" in out.stderr
    assert f"CORRUPT models/{MODEL}/versions/2/weights.safetensors" in out.stderr  # the shared content
    assert f"referenced by: {MODEL}@2 (champion) weights.safetensors" in out.stderr
    assert (local_store.root / ".objects" / sha256_bytes(WEIGHTS)).read_bytes() == tampered  # nothing repaired
    everything = run_cli("verify", "--all")
    assert everything.returncode == EXIT_CORRUPT
    for run in ("shared-1", "shared-2"):  # the runs' own outputs share the content too
        assert f"CORRUPT runs/tests-{run}-" in everything.stderr
        assert f"referenced by: run tests-{run}-" in everything.stderr


def test_models_marks_corrupt_versions_and_lists_everything(local_store):
    two_versions_sharing_weights(local_store)
    plan = make_plan("shared-3")
    register(local_store, plan, snapshot_of(local_store), trainer_outputs(local_store, plan, b"other weights"))
    flip_a_byte(local_store.root / ".objects" / sha256_bytes(WEIGHTS))
    manifest = local_store.root / "models" / MODEL / "versions" / "3" / "manifest.json"
    flip_a_byte(manifest.resolve())
    out = run_cli("models")
    assert out.returncode == EXIT_CORRUPT and "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"{MODEL}  (champion: 2)"
    assert "CORRUPT: weights.safetensors" in lines[1] and "CORRUPT: weights.safetensors" in lines[2]
    assert lines[3].startswith("  @3  CORRUPT manifest:")  # listed, not the end of the listing
    assert f"{MODEL}@1, {MODEL}@2, {MODEL}@3" in out.stderr


def test_lineage_says_whether_it_verified(local_store):
    flip_a_byte(two_versions_sharing_weights(local_store))
    plain = run_cli("lineage", f"{MODEL}@1")
    assert plain.returncode == 0 and "integrity         : not verified" in plain.stdout
    checked = run_cli("lineage", f"{MODEL}@1", "--verify")
    assert checked.returncode == EXIT_CORRUPT
    assert f"CORRUPT models/{MODEL}/versions/1/weights.safetensors" in checked.stderr


def test_reproduce_of_a_tampered_version_names_it_and_retrains_and_rewrites_nothing(local_store):
    shared = two_versions_sharing_weights(local_store)
    tampered = flip_a_byte(shared)
    out = run_cli("reproduce", f"{MODEL}@2")
    assert out.returncode == EXIT_CORRUPT and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert f"models/{MODEL}/versions/2/weights.safetensors" in out.stderr and "trainyard verify" in out.stderr
    assert not list(local_store.list_keys("runs/reproduce-"))  # nothing was trained
    assert shared.read_bytes() == tampered  # and the shared content was not "healed"


@pytest.fixture
def toy(tmp_path, local_store):
    source = tmp_path / "toy"
    (source / "dt=2026-01-19").mkdir(parents=True)
    (source / "labels.csv").write_bytes(b"id,name\n0,a\n")
    (source / "dt=2026-01-19" / "examples.csv").write_bytes(b"id,label\nx1,0\n")
    snapshot = snapshot_dataset(local_store, "toy", source).snapshot
    examples = next(f for f in snapshot.files if f.path.endswith("examples.csv"))
    blob = (local_store.root / blob_key(examples.sha256)).resolve()
    return source, snapshot, blob


def test_snapshot_verify_notices_a_corrupt_stored_blob(local_store, toy):
    source, snapshot, blob = toy
    flip_a_byte(blob)
    out = run_cli("snapshot", "toy", "--source", str(source), "--verify")
    assert out.returncode == EXIT_CORRUPT and "already stored" not in out.stdout
    assert "dt=2026-01-19/examples.csv" in out.stderr and "--repair-from-source" in out.stderr


def test_repair_from_source_restores_a_blob_only_while_the_source_is_unchanged(local_store, toy):
    source, snapshot, blob = toy
    flip_a_byte(blob)
    ref = f"toy@{snapshot.dataset_hash[:12]}"
    (source / "dt=2026-01-19" / "examples.csv").write_bytes(b"id,label\nx1,0\nx2,0\n")  # the source moved on
    refused = run_cli("verify", "--dataset", ref, "--repair-from-source", "--source", str(source))
    assert refused.returncode == EXIT_CORRUPT and "cannot repair" in refused.stderr and "source changed" in refused.stderr
    (source / "dt=2026-01-19" / "examples.csv").write_bytes(b"id,label\nx1,0\n")  # the original bytes again
    repaired = run_cli("verify", "--dataset", ref, "--repair-from-source", "--source", str(source))
    assert repaired.returncode == 0, repaired.stderr
    assert "REPAIRED datasets/blobs/sha256/" in repaired.stdout
    assert blob.read_bytes() == b"id,label\nx1,0\n"
    assert run_cli("snapshot", "toy", "--source", str(source), "--verify").returncode == 0
    assert "all intact" in run_cli("verify", "--all").stdout
