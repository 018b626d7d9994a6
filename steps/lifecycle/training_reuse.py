"""Find the registered version that already holds a training's result, by its identity.

Register indexes every version by its training identity, one pointer per version:

    models/<model>/identities/<identity_sha256>/<version>.json

so the lookup is one listing. A pointer is only a hint: the version's manifest (the one thing
readers trust) must carry the same identity, and a pointer that disagrees with its manifest is
reported, never followed. Versions registered before the index existed (v1 manifests) are indexed
from their manifests the first time a lookup meets them.
"""
from __future__ import annotations

import logging

from steps.hashing import canonical_json
from steps.lifecycle.manifest import ModelManifest
from steps.lifecycle.model_registry import ModelNotFound, load_manifest, registered_versions
from steps.lifecycle.plan import RunPlan
from steps.lifecycle.training_identity import TrainingIdentity, identity_for, short_torch_version, trainer_pin
from steps.store import ArtifactStore, IntegrityError, ObjectExists, validate_key, validate_name

log = logging.getLogger(__name__)


def identities_prefix(model: str) -> str:
    return f"models/{validate_name('model', model)}/identities/"


def identity_pointer_key(model: str, identity_sha256: str, version: int) -> str:
    return validate_key(f"{identities_prefix(model)}{identity_sha256}/{version}.json")


def identity_of(manifest: ModelManifest) -> TrainingIdentity:
    """A registered version's identity: recorded since manifest v2, derived in older manifests from
    the fields that pin the training (they hold all of them)."""
    if manifest.training_identity is not None:
        return manifest.training_identity
    code_pinned = not manifest.trainer.image_digest
    return TrainingIdentity(
        algorithm=manifest.algorithm,
        trainer=trainer_pin(manifest.trainer),
        dataset_hash=manifest.dataset.dataset_hash,
        hyperparameters=manifest.hyperparameters,
        seed=manifest.seed,
        split_seed=manifest.split_seed,
        test_fraction=manifest.test_fraction,
        num_threads=manifest.num_threads,
        world_size=manifest.world_size,
        torch_version=short_torch_version(manifest.torch_version) if code_pinned else None,
    )


def index_identity(store: ArtifactStore, manifest: ModelManifest) -> str:
    """Point the version's identity at it and return the identity's sha256 (idempotent: a retried
    registration writes the same pointer)."""
    identity_sha256 = identity_of(manifest).sha256
    key = identity_pointer_key(manifest.model_name, identity_sha256, manifest.version)
    record = {"identity_sha256": identity_sha256, "model_name": manifest.model_name, "version": manifest.version}
    try:
        store.put_bytes(key, canonical_json(record), if_absent=True)
    except ObjectExists:
        pass
    return identity_sha256


def _pointers(store: ArtifactStore, model: str) -> list[tuple[str, int]]:
    """(identity sha256, version) of every pointer, from the keys' names alone."""
    found = []
    prefix = identities_prefix(model)
    for key in store.list_keys(prefix):
        parts = key[len(prefix):].split("/")
        if len(parts) == 2 and parts[1].endswith(".json") and parts[1][:-5].isdigit():
            found.append((parts[0], int(parts[1][:-5])))
    return found


def _confirmed(store: ArtifactStore, model: str, version: int, identity_sha256: str) -> ModelManifest:
    pointer = identity_pointer_key(model, identity_sha256, version)
    try:
        manifest = load_manifest(store, model, version)
    except ModelNotFound:
        raise IntegrityError(
            f"{pointer} names {model}@{version}, which has no manifest; the identity index was altered"
        ) from None
    recorded = identity_of(manifest).sha256
    if recorded != identity_sha256:
        raise IntegrityError(
            f"{pointer} names {model}@{version}, but that version's manifest has training identity {recorded}; "
            "the identity index was altered, so it is not trusted (force=true trains regardless)"
        )
    return manifest


def version_with_identity(store: ArtifactStore, model: str, identity: TrainingIdentity) -> ModelManifest | None:
    """The first registered version of `model` trained with exactly this identity, or None."""
    wanted = identity.sha256
    pointers = _pointers(store, model)
    indexed = {version for _, version in pointers}
    for version in registered_versions(store, model):
        if version not in indexed:  # registered before the index existed
            pointers.append((index_identity(store, load_manifest(store, model, version)), version))
    matches = sorted(version for sha, version in pointers if sha == wanted)
    return _confirmed(store, model, matches[0], wanted) if matches else None


def reusable_version(store: ArtifactStore, plan: RunPlan, dataset_hash: str) -> ModelManifest | None:
    """The version whose weights are this run's result already, unless the run must train:
    `force` asks for a new training, and an exact replay exists to retrain and compare."""
    if plan.force or (plan.replay == "exact" and plan.replay_of):
        return None
    return version_with_identity(store, plan.model_name, identity_for(plan, dataset_hash))
