"""The `train` step: reuse the registered version that already holds this training's result, or
render the plan into the trainer contract, run it on an executor, and draw the run's learning curve
from what the trainer stored."""
from __future__ import annotations

from steps.data.snapshot import snapshot_key
from steps.executors.base import TrainerExecutor
from steps.lifecycle.plan import RunPlan
from steps.lifecycle.register import RegisteredVersion, record_reuse
from steps.lifecycle.training_reuse import reusable_version
from steps.monitoring.learning_curve import store_learning_curve
from steps.store import ArtifactStore, StoreSettings, open_store
from steps.training.contract import TrainerResult, TrainingJob


def training_job(plan: RunPlan, dataset_hash: str, *, device: str = "auto") -> TrainingJob:
    return TrainingJob(
        run_id=plan.run_key,
        algorithm=plan.algorithm,
        mode="train",
        dataset_name=plan.dataset,
        dataset_hash=dataset_hash,
        dataset_snapshot_key=snapshot_key(plan.dataset, dataset_hash),
        output_prefix=plan.output_prefix,
        seed=plan.seed,
        split_seed=plan.split_seed,
        test_fraction=plan.test_fraction,
        hyperparameters=plan.hyperparameters,
        num_threads=plan.num_threads,
        device=device,
        checkpoint_every=plan.checkpoint_every,
        checkpoints_kept=plan.checkpoints_kept,
        stall_timeout_s=plan.stall_timeout_s,
        nodes=plan.nodes,
        procs_per_node=plan.procs_per_node,
        pruning=plan.pruning,
    )


def run_training(
    plan: RunPlan,
    dataset_hash: str,
    executor: TrainerExecutor,
    store_settings: StoreSettings,
    *,
    objective: str = "macro_f1",
) -> TrainerResult:
    job = training_job(plan, dataset_hash)
    result = executor.run(job, plan.image, store_settings, deadline_s=plan.deadline_s)
    return finish_training(open_store(store_settings), plan, dataset_hash, result, objective=objective)


def finish_training(
    store: ArtifactStore, plan: RunPlan, dataset_hash: str, result: TrainerResult, *, objective: str = "macro_f1"
) -> TrainerResult:
    """Check what the trainer reports, and draw its learning curve (every executor, the pod operator too)."""
    if result.dataset_hash != dataset_hash:
        raise RuntimeError(f"trainer reports dataset {result.dataset_hash[:12]}, expected {dataset_hash[:12]}")
    if result.world_size != plan.shape.world_size:
        raise RuntimeError(f"trainer reports world size {result.world_size}, the run asked for {plan.shape.describe()}")
    store_learning_curve(
        store, plan.layout.train, title=f"{plan.model_name} — run {plan.run_key}", objective=objective, resumed=result.resumed
    )
    return result


def reuse_earlier_training(store: ArtifactStore, plan: RunPlan, dataset_hash: str) -> RegisteredVersion | None:
    """When a registered version already holds this training's result, record it as the run's result
    and return it: the run trains, evaluates and registers nothing. None means: train."""
    manifest = reusable_version(store, plan, dataset_hash)
    if manifest is None:
        return None
    return record_reuse(store, plan, manifest)


def reuse_message(reused: RegisteredVersion) -> str:
    return (
        f"reusing {reused.model_name}@{reused.version}: it was trained with this run's training identity "
        f"{reused.training_identity_sha256} (same trainer, data, hyperparameters, seeds); skipping train, "
        "evaluate and register (force=true trains anyway)"
    )
