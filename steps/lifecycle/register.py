"""The `register` step: files first, manifest last, never overwriting a version.

A version number is claimed with a create-only write (claim.json) before any file is
copied, so two concurrent registrations of one model get different numbers. A retry of
the same run finds its own claim and finishes it; the manifest's create-only write is
the commit point: a version without a manifest does not exist.
"""
from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.data.snapshot import Snapshot
from steps.data.validation_run import ValidationSummary
from steps.hashing import canonical_json
from steps.lifecycle.manifest import (
    LEARNING_CURVE_FILE,
    TENSORBOARD_EVENTS_FILE,
    AirflowLineage,
    DatasetLineage,
    EvaluationRecord,
    ManifestFile,
    ModelManifest,
    ReplayRecord,
    ValidationLineage,
)
from steps.lifecycle.model_registry import (
    CHAMPION,
    AliasMoved,
    claimed_versions,
    load_manifest,
    read_alias_entry,
    record_alias_history,
    set_alias,
    version_key,
)
from steps.lifecycle.plan import RunPlan
from steps.lifecycle.training_identity import identity_for
from steps.lifecycle.training_reuse import identity_of, index_identity
from steps.store import ArtifactStore, IntegrityError, ObjectExists
from steps.training.contract import TrainerResult

MAX_CLAIM_ATTEMPTS = 1000

log = logging.getLogger(__name__)


class RegisteredVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    version: int
    manifest_key: str
    weights_sha256: str
    champion: bool
    #: Why this version is or is not the champion (the gate's verdict, or who moved the alias first).
    champion_reason: str = ""
    store_location: str
    # A run whose training identity a registered version already had trains nothing: its result is
    # that version, reused (steps/lifecycle/training_reuse.py).
    reused: bool = False
    training_identity_sha256: str | None = None


def claim_version(store: ArtifactStore, model: str, run_key: str) -> int:
    claims = claimed_versions(store, model)
    for version, owner in sorted(claims.items()):
        if owner == run_key:
            return version  # a retry of this run: resume its claim
    candidate = max(claims, default=0) + 1
    for _ in range(MAX_CLAIM_ATTEMPTS):
        try:
            store.put_bytes(
                version_key(model, candidate, "claim.json"),
                canonical_json({"run_key": run_key}),
                if_absent=True,
            )
            return candidate
        except ObjectExists:
            owner = json.loads(store.get_bytes(version_key(model, candidate, "claim.json")))["run_key"]
            if owner == run_key:
                return candidate
            candidate += 1
    raise RuntimeError(f"could not claim a version of {model!r} after {MAX_CLAIM_ATTEMPTS} attempts")


def _copy(store: ArtifactStore, source_key: str, dest_key: str, scratch: Path) -> ManifestFile:
    local = scratch / dest_key.rsplit("/", 1)[-1]
    source = store.get_file(source_key, local)  # verifies the source's sha256
    existing = store.stat(dest_key)
    if existing is not None:
        if existing.sha256 != source.sha256:
            raise IntegrityError(f"{dest_key} exists with different content; refusing to overwrite")
        stored = existing
    else:
        stored = store.put_file(dest_key, local, if_absent=True)
    return ManifestFile(name=dest_key.rsplit("/", 1)[-1], sha256=stored.sha256, size_bytes=stored.size_bytes)


def register_model(
    store: ArtifactStore,
    plan: RunPlan,
    snapshot: Snapshot,
    validation_report_key: str,
    validation_expectations: int,
    result: TrainerResult,
    evaluation: EvaluationRecord,
    *,
    replay: ReplayRecord | None = None,
    historical: bool = False,
    validation: ValidationSummary | None = None,
) -> RegisteredVersion:
    """`validation`, when given, adds where the validation came from (suite, GX version, reuse)."""
    required = {
        "weights.safetensors": result.weights_key,
        "metrics.jsonl": plan.layout.train.metrics,
        "result.json": plan.layout.train.result,
        "validation.json": validation_report_key,
        "evaluation.json": plan.layout.evaluation,
    }
    optional = {
        "trainer.log": plan.layout.train.trainer_log,  # pods log to Kubernetes instead
        # Absent from runs of trainers older than checkpoints and monitoring.
        LEARNING_CURVE_FILE: plan.layout.train.learning_curve,
        TENSORBOARD_EVENTS_FILE: plan.layout.train.tensorboard_events,
    }
    missing = [key for key in required.values() if not store.exists(key)]
    if missing:  # never commit a half-written model
        raise IntegrityError(f"cannot register {plan.model_name}: run outputs missing: {', '.join(missing)}")

    version = claim_version(store, plan.model_name, plan.run_key)
    manifest_key = version_key(plan.model_name, version, "manifest.json")
    if store.exists(manifest_key):  # a retry after the commit point: finish what follows it
        manifest = load_manifest(store, plan.model_name, version)
        return _after_commit(store, plan, manifest, manifest_key, evaluation)

    sources = {**required, **{name: key for name, key in optional.items() if store.exists(key)}}
    with tempfile.TemporaryDirectory(prefix="trainyard-register-") as tmp:
        files = [
            _copy(store, source, version_key(plan.model_name, version, name), Path(tmp))
            for name, source in sources.items()
        ]
    if result.world_size != plan.shape.world_size:
        raise IntegrityError(
            f"the trainer reports world size {result.world_size}, but the run planned {plan.shape.describe()}"
        )
    identity = identity_for(plan, snapshot.dataset_hash, torch_version=result.torch_version)
    weights = next(f for f in files if f.name == "weights.safetensors")
    if weights.sha256 != result.weights_sha256:
        raise IntegrityError(
            f"weights sha256 {weights.sha256[:12]} differs from the trainer's report {result.weights_sha256[:12]}"
        )
    manifest = ModelManifest(
        model_name=plan.model_name,
        version=version,
        created_at=datetime.now(UTC).isoformat(),
        run_key=plan.run_key,
        algorithm=plan.algorithm,
        trainer=plan.image,
        executor=plan.executor,
        dataset=DatasetLineage(
            name=snapshot.dataset,
            dataset_hash=snapshot.dataset_hash,
            partitions=snapshot.partitions,
            as_of=snapshot.as_of,
            source=plan.dataset_source,
            eval_set_hash=result.eval_set_hash,
        ),
        validation=ValidationLineage(
            success=True,
            report_key=validation_report_key,
            expectations_evaluated=validation_expectations,
            suite_sha256=validation.suite_sha256 if validation else None,
            gx_version=validation.gx_version if validation else None,
            reused_from=validation.reused_from if validation else None,
        ),
        seed=plan.seed,
        split_seed=plan.split_seed,
        test_fraction=plan.test_fraction,
        hyperparameters=plan.hyperparameters,
        num_threads=result.num_threads,
        device=result.device,
        torch_version=result.torch_version,
        nodes=plan.nodes,
        procs_per_node=plan.procs_per_node,
        world_size=result.world_size,
        backend=result.backend,
        metrics=result.metrics,
        weights_sha256=result.weights_sha256,
        epochs_completed=result.epochs_completed,
        resumed=result.resumed,
        evaluation=evaluation,
        airflow=AirflowLineage(dag_id=plan.dag_id, run_id=plan.airflow_run_id, logical_date=plan.logical_date),
        replay=replay or ReplayRecord(mode="none" if plan.replay == "none" else plan.replay),
        historical=historical,
        study=plan.study,
        files=files,
        training_identity=identity,
        training_identity_sha256=identity.sha256,
    )
    try:
        store.put_bytes(manifest_key, manifest.to_bytes(), if_absent=True)  # the commit point
    except ObjectExists:
        manifest = load_manifest(store, plan.model_name, version)
        if manifest.run_key != plan.run_key:
            raise
    return _after_commit(store, plan, manifest, manifest_key, evaluation)


def _after_commit(
    store: ArtifactStore, plan: RunPlan, manifest: ModelManifest, manifest_key: str, evaluation: EvaluationRecord
) -> RegisteredVersion:
    """Idempotent: a retry after the commit point still indexes the identity, moves the alias and
    records the result."""
    index_identity(store, manifest)
    champion, reason = _promote(store, plan, manifest, evaluation)
    registered = _registered(store, manifest, manifest_key, champion, reason)
    store.put_bytes(plan.layout.registered, registered.model_dump_json(indent=2).encode())
    return registered


def _promote(store: ArtifactStore, plan: RunPlan, manifest: ModelManifest, evaluation: EvaluationRecord) -> tuple[bool, str]:
    """Move the champion alias to this version if the gate passed against the champion it still names.

    The read and the write are one compare-and-swap, so of two runs promoting at once exactly one wins.
    """
    if not evaluation.promote:
        return False, evaluation.reason
    current, current_sha256 = read_alias_entry(store, plan.model_name, CHAMPION)
    if current is not None and current.version == manifest.version:
        record_alias_history(store, plan.model_name, current)  # a retry after the move: keep its history line
        return True, current.reason
    current_version = current.version if current else None
    if current_version != evaluation.champion_version:
        # The gate was passed against a model that is no longer champion; the alias stays put.
        reason = (f"champion is v{current_version} now, not v{evaluation.champion_version} that this run was "
                  f"evaluated against; v{manifest.version} was not made champion")
    else:
        try:
            set_alias(store, plan.model_name, CHAMPION, manifest.version, plan.run_key, evaluation.reason,
                      expected_sha256=current_sha256)
            return True, evaluation.reason
        except AliasMoved as exc:
            reason = str(exc)
    log.warning("%s@%d: %s", plan.model_name, manifest.version, reason)
    return False, reason


def _registered(
    store: ArtifactStore, manifest: ModelManifest, manifest_key: str, champion: bool, champion_reason: str, *,
    reused: bool = False,
) -> RegisteredVersion:
    return RegisteredVersion(
        model_name=manifest.model_name,
        version=manifest.version,
        manifest_key=manifest_key,
        weights_sha256=manifest.weights_sha256,
        champion=champion,
        champion_reason=champion_reason,
        store_location=store.location,
        reused=reused,
        training_identity_sha256=identity_of(manifest).sha256,
    )


def record_reuse(store: ArtifactStore, plan: RunPlan, manifest: ModelManifest) -> RegisteredVersion:
    """The run's result is a version registered before: record it where register records its own."""
    alias, _ = read_alias_entry(store, manifest.model_name, CHAMPION)
    champion = alias is not None and alias.version == manifest.version
    key = version_key(manifest.model_name, manifest.version, "manifest.json")
    reason = "" if champion else (f"the champion is v{alias.version}" if alias else "the model has no champion")
    registered = _registered(store, manifest, key, champion, reason, reused=True)
    store.put_bytes(plan.layout.registered, registered.model_dump_json(indent=2).encode())
    return registered
