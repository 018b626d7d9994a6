"""The `train` step: render the plan into the trainer contract and run it on an executor."""
from __future__ import annotations

from steps.data.snapshot import snapshot_key
from steps.executors.base import TrainerExecutor
from steps.lifecycle.plan import RunPlan
from steps.store import StoreSettings
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
        nodes=plan.nodes,
        procs_per_node=plan.procs_per_node,
    )


def run_training(
    plan: RunPlan, dataset_hash: str, executor: TrainerExecutor, store_settings: StoreSettings
) -> TrainerResult:
    job = training_job(plan, dataset_hash)
    result = executor.run(job, plan.image, store_settings, deadline_s=plan.deadline_s)
    if result.dataset_hash != dataset_hash:
        raise RuntimeError(f"trainer reports dataset {result.dataset_hash[:12]}, expected {dataset_hash[:12]}")
    if result.world_size != job.shape.world_size:
        raise RuntimeError(f"trainer reports world size {result.world_size}, the run asked for {job.shape.describe()}")
    return result
