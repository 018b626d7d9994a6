"""Backfills that reproduce old models.

For a logical date D of a model:
- a version already registered for D  -> exact replay of its manifest (or, with
  replay=current-code, its data and seeds on today's trainer), never moving the champion;
- no version for D                    -> train on the data as of D with the image that was
  current on D, registered as a historical version.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, computed_field

from steps.executors.base import ShapeUnsupported, refuse_unsupported_shape
from steps.images.code_hash import trainer_code_sha256
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.manifest import ModelManifest
from steps.lifecycle.model_registry import load_manifest, registered_versions
from steps.lifecycle.plan import RunPlan
from steps.store import ArtifactStore


class ReplayRefused(RuntimeError):
    """An exact replay cannot use the pinned trainer; never fall back to a tag."""


class ReproductionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    replayed: str  # MODEL@VERSION
    logical_date: str | None
    expected_weights_sha256: str
    actual_weights_sha256: str
    weights_match: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def message(self) -> str:
        if self.weights_match:
            return f"reproduced: weights hash matches ({self.replayed}, {self.actual_weights_sha256})"
        return (
            f"NOT reproduced: {self.replayed} expected weights {self.expected_weights_sha256}, "
            f"retrained {self.actual_weights_sha256}"
        )


class WeightsMismatch(RuntimeError):
    pass


def model_registered_for(store: ArtifactStore, model: str, day: date) -> ModelManifest | None:
    """The original (lowest) version trained for logical date `day`, excluding replays."""
    for version in registered_versions(store, model):
        manifest = load_manifest(store, model, version)
        logical = manifest.airflow.logical_date
        if logical and logical[:10] == day.isoformat() and manifest.replay.mode == "none":
            return manifest
    return None


def check_trainer_available(image: TrainerImage, digest_exists=None) -> None:
    """The pinned trainer must still exist: the code hash for the embedded executor,
    the digest in the registry for images. No fallback to a tag, ever."""
    if image.code_sha256:
        current = trainer_code_sha256(Path(image.entrypoint).parent)
        if current != image.code_sha256:
            raise ReplayRefused(
                f"trainer code {image.code_sha256[:12]} of {image.algorithm!r} is no longer available "
                f"(current code is {current[:12]}); exact replay does not fall back to other code"
            )
        return
    if digest_exists is not None and not digest_exists(image.pinned_reference):
        raise ReplayRefused(
            f"image digest {image.image_digest} of {image.algorithm!r} is no longer in the registry "
            f"({image.pinned_reference}); exact replay does not fall back to a tag"
        )


def _manifest_inputs(manifest: ModelManifest) -> dict:
    """What every replay takes from the replayed manifest: data, seeds, config, provenance."""
    return {
        "hyperparameters": manifest.hyperparameters,
        "seed": manifest.seed,
        "split_seed": manifest.split_seed,
        "test_fraction": manifest.test_fraction,
        "pinned_dataset_hash": manifest.dataset.dataset_hash,
        "replay_of": f"{manifest.model_name}@{manifest.version}",
        "promote": False,
        # The weights depend on the world size, so a replay trains on the pinned shape.
        "nodes": manifest.nodes,
        "procs_per_node": manifest.procs_per_node,
    }


def check_shape_runs_here(manifest: ModelManifest, executor: str) -> None:
    try:
        refuse_unsupported_shape(executor, manifest.shape)
    except ShapeUnsupported as exc:
        raise ReplayRefused(
            f"{manifest.model_name}@{manifest.version} was trained on {manifest.shape.describe()}, "
            f"which a replay must use: {exc}"
        ) from None


def exact_replay_plan(plan: RunPlan, manifest: ModelManifest) -> RunPlan:
    return plan.model_copy(
        update={
            **_manifest_inputs(manifest),
            "algorithm": manifest.algorithm,
            "image": manifest.trainer,
            "num_threads": manifest.num_threads,
            "replay": "exact",
            "expected_weights_sha256": manifest.weights_sha256,
        }
    )


def current_code_replay_plan(plan: RunPlan, manifest: ModelManifest, current_image: TrainerImage | None = None) -> RunPlan:
    """Old data and seeds, today's trainer: a corrected re-run, registered as a new version."""
    return plan.model_copy(
        update={
            **_manifest_inputs(manifest),
            "image": current_image or plan.image,
            "replay": "current-code",
            "historical": True,
        }
    )


def backfill_plan(
    store: ArtifactStore,
    plan: RunPlan,
    day: date,
    replay: str,
    digest_exists=None,
    current_image: TrainerImage | None = None,
) -> RunPlan:
    existing = model_registered_for(store, plan.model_name, day)
    if existing is None:
        return plan.model_copy(update={"promote": False, "historical": True, "replay": "none"})
    check_shape_runs_here(existing, plan.executor)
    if replay == "current-code":
        return current_code_replay_plan(plan, existing, current_image)
    check_trainer_available(existing.trainer, digest_exists)
    return exact_replay_plan(plan, existing)


def verify_reproduction(store: ArtifactStore, plan: RunPlan, actual_weights_sha256: str) -> ReproductionRecord:
    record = ReproductionRecord(
        model_name=plan.model_name,
        replayed=plan.replay_of or "",
        logical_date=plan.logical_date,
        expected_weights_sha256=plan.expected_weights_sha256 or "",
        actual_weights_sha256=actual_weights_sha256,
        weights_match=actual_weights_sha256 == plan.expected_weights_sha256,
    )
    store.put_bytes(plan.layout.reproduction, record.model_dump_json(indent=2).encode())
    if not record.weights_match:
        raise WeightsMismatch(record.message)
    return record
