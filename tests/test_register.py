"""Registration: files first, manifest last, versions never overwritten or clobbered."""
from __future__ import annotations

import threading

import pytest

from steps.lifecycle.model_registry import claimed_versions, load_manifest, read_alias, registered_versions
from steps.store import IntegrityError, ObjectExists
from tests.pipeline_fixtures import make_plan, snapshot_of
from tests.registration_fixtures import register, trainer_outputs


def test_concurrent_registrations_of_one_model_get_distinct_intact_versions(local_store):
    snapshot = snapshot_of(local_store)
    plans = [make_plan(f"run-{i}") for i in range(6)]
    results = [trainer_outputs(local_store, p, f"weights-{i}".encode()) for i, p in enumerate(plans)]
    registered, errors = [], []

    def worker(plan, result):
        try:
            registered.append(register(local_store, plan, snapshot, result, promote=False))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=pr) for pr in zip(plans, results, strict=True)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert sorted(r.version for r in registered) == [1, 2, 3, 4, 5, 6]
    for r in registered:
        manifest = load_manifest(local_store, r.model_name, r.version)
        weights = local_store.get_bytes(f"models/{r.model_name}/versions/{r.version}/weights.safetensors")
        assert manifest.weights_sha256 == r.weights_sha256
        assert weights == f"weights-{plans.index(next(p for p in plans if p.run_key == manifest.run_key))}".encode()


def test_a_registered_version_is_never_overwritten(local_store):
    snapshot = snapshot_of(local_store)
    plan = make_plan("run-a")
    first = register(local_store, plan, snapshot, trainer_outputs(local_store, plan, b"w"))
    with pytest.raises(ObjectExists):
        local_store.put_bytes(first.manifest_key, b"{}", if_absent=True)
    assert load_manifest(local_store, first.model_name, 1).run_key == plan.run_key


def test_retry_after_a_crash_before_the_manifest_finishes_the_same_version(local_store, monkeypatch):
    from steps.lifecycle import register as register_module

    snapshot = snapshot_of(local_store)
    plan = make_plan("run-crash")
    result = trainer_outputs(local_store, plan, b"w")
    real_copy = register_module._copy
    calls = {"n": 0}

    def crash_on_third_file(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("store went away mid-registration")
        return real_copy(*args)

    monkeypatch.setattr(register_module, "_copy", crash_on_third_file)
    with pytest.raises(ConnectionError):
        register(local_store, plan, snapshot, result)
    assert registered_versions(local_store, plan.model_name) == []  # no manifest: the version does not exist
    assert read_alias(local_store, plan.model_name) is None
    monkeypatch.setattr(register_module, "_copy", real_copy)
    again = register(local_store, plan, snapshot, result)  # the task's retry
    assert again.version == 1 and registered_versions(local_store, plan.model_name) == [1]
    assert claimed_versions(local_store, plan.model_name) == {1: plan.run_key}
    assert read_alias(local_store, plan.model_name).version == 1


def test_registering_again_changes_nothing_and_another_run_gets_the_next_version(local_store):
    snapshot = snapshot_of(local_store)
    first_plan, other_plan = make_plan("run-same"), make_plan("run-other")
    first = register(local_store, first_plan, snapshot, trainer_outputs(local_store, first_plan, b"original"))
    manifest_bytes = local_store.get_bytes(first.manifest_key)
    again = register(local_store, first_plan, snapshot, trainer_outputs(local_store, first_plan, b"original"))
    other = register(local_store, other_plan, snapshot, trainer_outputs(local_store, other_plan, b"different"))
    assert again.version == 1 and other.version == 2
    assert local_store.get_bytes(first.manifest_key) == manifest_bytes
    assert local_store.get_bytes("models/digits-digits-cnn/versions/1/weights.safetensors") == b"original"


def test_retry_after_the_commit_point_still_moves_the_champion_and_records_the_result(local_store, monkeypatch):
    from steps.lifecycle import register as register_module

    snapshot = snapshot_of(local_store)
    plan = make_plan("run-alias-crash")
    result = trainer_outputs(local_store, plan, b"w")
    real_set_alias = register_module.set_alias

    def fail_once(*args, **kwargs):
        monkeypatch.setattr(register_module, "set_alias", real_set_alias)
        raise ConnectionError("store went away after the manifest was written")

    monkeypatch.setattr(register_module, "set_alias", fail_once)
    with pytest.raises(ConnectionError):
        register(local_store, plan, snapshot, result)
    assert registered_versions(local_store, plan.model_name) == [1] and read_alias(local_store, plan.model_name) is None
    again = register(local_store, plan, snapshot, result)
    assert again.champion and read_alias(local_store, plan.model_name).version == 1
    assert local_store.exists(f"runs/{plan.run_key}/registered.json")


def test_a_run_missing_an_output_is_refused_by_name_and_claims_nothing(local_store):
    snapshot = snapshot_of(local_store)
    plan = make_plan("run-missing")
    result = trainer_outputs(local_store, plan, b"w")
    local_store.delete(f"{plan.output_prefix}/metrics.jsonl")
    with pytest.raises(IntegrityError, match="metrics.jsonl"):
        register(local_store, plan, snapshot, result)
    assert claimed_versions(local_store, plan.model_name) == {}


def test_a_gate_passed_against_a_champion_that_has_since_changed_does_not_move_the_alias(local_store):
    snapshot = snapshot_of(local_store)
    p1, p2 = make_plan("run-first"), make_plan("run-stale")
    register(local_store, p1, snapshot, trainer_outputs(local_store, p1, b"one"), promote=True)
    # p2 was evaluated when there was no champion yet (champion_version None), but v1 is champion now.
    stale = register(local_store, p2, snapshot, trainer_outputs(local_store, p2, b"two"), promote=True)
    assert stale.version == 2 and not stale.champion
    assert read_alias(local_store, p1.model_name).version == 1
