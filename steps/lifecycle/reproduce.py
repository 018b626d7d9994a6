"""Retrain from a registered manifest and say whether the weights are bit-identical."""
from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.data.snapshot import snapshot_key
from steps.executors.base import TrainerExecutor
from steps.images.code_hash import trainer_code_sha256
from steps.lifecycle.manifest import ModelManifest
from steps.lifecycle.verify import CorruptModel, verify_manifest
from steps.store import StoreSettings, open_store
from steps.store.run_layout import RunLayout
from steps.training.contract import TrainerResult, TrainingJob
from steps.training.shape import CPU_BACKEND, CUDA_BACKEND, NO_BACKEND


class ReproductionReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    version: int
    expected_weights_sha256: str
    actual_weights_sha256: str
    weights_match: bool
    trainer_pinned_by: str
    trainer_code_changed: bool  # embedded executor only: current code differs from the pinned hash
    output_prefix: str  # where the scratch run's outputs are; empty once removed
    shape: str = "1×1"  # nodes × procs_per_node the reproduction trained on (the manifest's)
    pinned_backend: str = NO_BACKEND

    def summary(self) -> str:
        kept = f"; scratch run kept under {self.output_prefix}" if self.output_prefix else ""
        if self.weights_match:
            return (
                f"reproduced {self.model_name}@{self.version} on {self.shape}: weights hash matches "
                f"({self.actual_weights_sha256}){kept}"
            )
        note = " (the trainer's code changed since registration)" if self.trainer_code_changed else ""
        if self.pinned_backend == CUDA_BACKEND:
            note += f" (trained with {CUDA_BACKEND} on CUDA; reproduced on CPU with {CPU_BACKEND}: bit-identity holds only on CPU)"
        return (
            f"NOT reproduced {self.model_name}@{self.version}: expected weights {self.expected_weights_sha256}, "
            f"got {self.actual_weights_sha256}{note}{kept}"
        )


def reproduction_job(manifest: ModelManifest, run_key: str) -> TrainingJob:
    return TrainingJob(
        run_id=run_key,
        algorithm=manifest.algorithm,
        mode="train",
        dataset_name=manifest.dataset.name,
        dataset_hash=manifest.dataset.dataset_hash,
        dataset_snapshot_key=snapshot_key(manifest.dataset.name, manifest.dataset.dataset_hash),
        output_prefix=RunLayout(run_key).train.prefix,
        seed=manifest.seed,
        split_seed=manifest.split_seed,
        test_fraction=manifest.test_fraction,
        hyperparameters=manifest.hyperparameters,
        num_threads=manifest.num_threads,
        device="cpu",  # bit-identity is promised on CPU
        nodes=manifest.nodes,  # the weights depend on the world size: train on the pinned shape
        procs_per_node=manifest.procs_per_node,
    )


def reproduce_model(
    manifest: ModelManifest,
    executor: TrainerExecutor,
    store_settings: StoreSettings,
    *,
    run_key: str | None = None,
    deadline_s: int = 3600,
    keep_run: bool = False,
) -> tuple[ReproductionReport, TrainerResult]:
    """Verify the version's files and snapshot against the manifest first (CorruptModel names what is
    corrupt, and nothing is retrained or written), retrain in a scratch run, compare weights, and
    remove the scratch run's outputs unless keep_run."""
    store = open_store(store_settings)
    verified = verify_manifest(store, manifest)
    if not verified.ok:
        raise CorruptModel(verified)
    run_key = run_key or f"reproduce-{manifest.model_name}-{manifest.version}-{uuid.uuid4().hex[:8]}"
    job = reproduction_job(manifest, run_key)
    code_changed = False
    if manifest.trainer.code_sha256:
        current = trainer_code_sha256(Path(manifest.trainer.entrypoint).parent)
        code_changed = current != manifest.trainer.code_sha256
    try:
        result = executor.run(job, manifest.trainer, store_settings, deadline_s=deadline_s)
    finally:
        if not keep_run:  # its weights, when they match, are the registered content anyway
            for key in list(store.list_keys(f"{RunLayout(run_key).prefix}/")):
                store.delete(key)
    report = ReproductionReport(
        model_name=manifest.model_name,
        version=manifest.version,
        expected_weights_sha256=manifest.weights_sha256,
        actual_weights_sha256=result.weights_sha256,
        weights_match=result.weights_sha256 == manifest.weights_sha256,
        trainer_pinned_by=manifest.trainer.pinned_reference,
        trainer_code_changed=code_changed,
        output_prefix=job.output_prefix if keep_run else "",
        shape=str(manifest.shape),
        pinned_backend=manifest.backend,
    )
    return report, result
