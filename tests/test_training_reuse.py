"""A training's identity is everything that determines its weights; a run whose identity a
registered version already has reuses that version. Registrations here use real steps with small
stand-in weights (no trainer runs); tests/test_training_reuse_pipeline.py trains for real."""
from __future__ import annotations

import pytest

from steps.images.trainer_image import TrainerImage
from steps.lifecycle.manifest import ModelManifest
from steps.lifecycle.model_registry import load_manifest, version_key
from steps.lifecycle.train import reuse_earlier_training
from steps.lifecycle.training_identity import TrainingIdentity, identity_for
from steps.lifecycle.training_reuse import (
    identities_prefix,
    identity_of,
    identity_pointer_key,
    reusable_version,
    version_with_identity,
)
from steps.store import IntegrityError
from tests.pipeline_fixtures import make_plan, snapshot_of
from tests.test_register import register, trainer_outputs

DATA = "da7a" * 16
DIGEST = "sha256:" + "ab12" * 16


def image_plan(run_id: str, digest: str = DIGEST, **changes):
    plan = make_plan(run_id, **changes)
    image = TrainerImage(algorithm=plan.algorithm, image_reference="127.0.0.1:5000/trainyard/digits-cnn:1.0.0",
                         image_digest=digest, entrypoint=plan.image.entrypoint)
    return plan.model_copy(update={"image": image, "executor": "container"})


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: (p, "da7b" * 16), id="one-byte-of-data"),
        pytest.param(lambda p: (p.model_copy(update={"hyperparameters": {**p.hyperparameters, "epochs": 3}}), DATA),
                     id="a-hyperparameter"),
        pytest.param(lambda p: (p.model_copy(update={"seed": p.seed + 1}), DATA), id="the-seed"),
        pytest.param(lambda p: (p.model_copy(update={"split_seed": p.split_seed + 1}), DATA), id="the-split-seed"),
        pytest.param(lambda p: (p.model_copy(update={"num_threads": 2}), DATA), id="the-thread-count"),
        pytest.param(
            lambda p: (p.model_copy(update={"image": p.image.model_copy(update={"code_sha256": "0" * 64})}), DATA),
            id="the-trainer-code",
        ),
    ],
)
def test_each_ingredient_of_a_training_changes_its_identity(change):
    plan = make_plan("a")
    same = identity_for(make_plan("another-run-id"), DATA)
    changed_plan, data = change(plan)
    assert identity_for(plan, DATA).sha256 == same.sha256  # the run id is not an ingredient
    assert identity_for(changed_plan, data).sha256 != same.sha256


def test_the_image_digest_pins_an_image_trainer_and_nothing_else_about_its_python_does():
    one, other = identity_for(image_plan("a"), DATA), identity_for(image_plan("b", digest="sha256:" + "cd34" * 16), DATA)
    assert one.sha256 != other.sha256
    assert one.torch_version is None  # the digest covers the torch inside the image
    code_pinned = identity_for(make_plan("c"), DATA)
    assert code_pinned.torch_version and code_pinned.sha256 != identity_for(
        make_plan("c"), DATA, torch_version="0.0.1").sha256


def test_a_field_added_later_with_a_default_keeps_every_earlier_identity():
    class WithWorldSize(TrainingIdentity):  # how distributed training will extend the record
        world_size: int = 1

    before = identity_for(make_plan("a"), DATA)
    after = WithWorldSize(**before.model_dump())
    assert after.sha256 == before.sha256
    assert WithWorldSize(**{**before.model_dump(), "world_size": 4}).sha256 != before.sha256


@pytest.fixture
def registered_v1(local_store):
    snapshot = snapshot_of(local_store)
    plan = make_plan("first")
    registered = register(local_store, plan, snapshot, trainer_outputs(local_store, plan, b"weights-1"))
    return snapshot, plan, registered


def test_the_same_request_again_reuses_the_first_version(local_store, registered_v1):
    snapshot, plan, registered = registered_v1
    manifest = load_manifest(local_store, "digits-digits-cnn", 1)
    assert manifest.training_identity_sha256 == identity_for(plan, snapshot.dataset_hash).sha256

    again = make_plan("second")
    reused = reuse_earlier_training(local_store, again, snapshot.dataset_hash)

    assert reused is not None and reused.reused and reused.version == registered.version
    assert reused.weights_sha256 == registered.weights_sha256 and reused.champion
    assert local_store.get_bytes(again.layout.registered) == reused.model_dump_json(indent=2).encode()


def test_another_seed_or_force_or_an_exact_replay_finds_nothing_to_reuse(local_store, registered_v1):
    snapshot, _, _ = registered_v1
    assert reusable_version(local_store, make_plan("other-seed", seed=8), snapshot.dataset_hash) is None
    forced = make_plan("forced").model_copy(update={"force": True})
    assert reusable_version(local_store, forced, snapshot.dataset_hash) is None
    replay = make_plan("replay").model_copy(update={"replay": "exact", "replay_of": "digits-digits-cnn@1"})
    assert reusable_version(local_store, replay, snapshot.dataset_hash) is None
    assert not local_store.exists(forced.layout.registered)


def test_a_pointer_that_disagrees_with_its_manifest_is_reported_not_followed(local_store, registered_v1):
    snapshot, _, _ = registered_v1
    other = identity_for(make_plan("x", seed=99), snapshot.dataset_hash)
    local_store.put_bytes(identity_pointer_key("digits-digits-cnn", other.sha256, 1), b"{}")

    with pytest.raises(IntegrityError, match="identity index was altered"):
        version_with_identity(local_store, "digits-digits-cnn", other)


def test_a_version_registered_before_identities_were_recorded_is_found_and_indexed(local_store, registered_v1):
    snapshot, plan, _ = registered_v1
    manifest = load_manifest(local_store, "digits-digits-cnn", 1)
    v1_manifest = ModelManifest.model_validate(
        {**manifest.model_dump(), "schema_version": 1, "training_identity": None, "training_identity_sha256": None}
    )
    local_store.put_bytes(version_key("digits-digits-cnn", 1, "manifest.json"), v1_manifest.to_bytes())
    for key in list(local_store.list_keys(identities_prefix("digits-digits-cnn"))):
        local_store.delete(key)
    assert identity_of(v1_manifest).sha256 == manifest.training_identity_sha256  # derived from its fields

    found = reusable_version(local_store, make_plan("again"), snapshot.dataset_hash)

    assert found is not None and found.version == 1
    assert list(local_store.list_keys(identities_prefix("digits-digits-cnn")))  # indexed for next time


def test_the_preview_of_a_run_says_whether_it_will_validate_and_train(local_store, tmp_path):
    from steps.data.schemas import get_schema
    from steps.data.validation_cache import record_validation, validation_key
    from steps.lifecycle.run_preview import preview_run

    plan = make_plan("preview")
    fresh = preview_run(local_store, plan)
    assert fresh.will_validate and fresh.will_train

    snapshot = snapshot_of(local_store)
    assert fresh.dataset_hash == snapshot.dataset_hash  # hashed as the snapshot step hashes
    first = make_plan("first")
    register(local_store, first, snapshot, trainer_outputs(local_store, first, b"weights-1"))
    record_validation(local_store, validation_key("digits", snapshot.dataset_hash, get_schema("digits")),
                      success=True, checks_evaluated=201, checks_failed=0,
                      report_key=first.layout.validation_report, run_key=first.run_key)

    again = preview_run(local_store, plan)
    assert not again.will_validate and not again.will_train
    assert preview_run(local_store, plan.model_copy(update={"force": True})).will_train


def test_lineage_shows_the_training_identity_and_what_it_is_made_of(local_store, registered_v1):
    from steps.lifecycle.lineage import lineage_lines

    snapshot, plan, _ = registered_v1
    identity = identity_for(plan, snapshot.dataset_hash)

    text = "\n".join(lineage_lines(local_store, load_manifest(local_store, "digits-digits-cnn", 1)))

    assert f"training identity : {identity.sha256}\n" in text  # recorded, not derived
    assert identity.describe() in text and snapshot.dataset_hash[:12] in identity.describe()
