"""The `evaluate` step: compare the challenger with the champion on the same eval set."""
from __future__ import annotations

from steps.data.snapshot import snapshot_key
from steps.executors.base import TrainerExecutor
from steps.lifecycle.manifest import EvaluationRecord
from steps.lifecycle.model_registry import CHAMPION, load_manifest, read_alias, version_key
from steps.lifecycle.plan import RunPlan
from steps.store import ArtifactStore, StoreSettings
from steps.training.contract import EvalMetrics, TrainerResult, TrainingJob

WEIGHTS_FILE = "weights.safetensors"


def _metric(metrics: EvalMetrics, name: str) -> float:
    value = getattr(metrics, name, None)
    if not isinstance(value, (int, float)):
        raise ValueError(f"primary metric {name!r} is not a scalar metric")
    return float(value)


def champion_metrics_on(
    store: ArtifactStore,
    store_settings: StoreSettings,
    plan: RunPlan,
    challenger: TrainerResult,
    executor: TrainerExecutor,
    champion_version: int,
) -> tuple[EvalMetrics, str]:
    """The champion's metrics on the challenger's eval set: recorded if the eval-set
    hash matches, else re-evaluated by running the champion's own trainer in evaluate mode."""
    manifest = load_manifest(store, plan.model_name, champion_version)
    if manifest.dataset.eval_set_hash == challenger.eval_set_hash:
        return manifest.metrics, "recorded"
    job = TrainingJob(
        run_id=f"{plan.run_key}-champion",
        algorithm=manifest.algorithm,
        mode="evaluate",
        dataset_name=plan.dataset,
        dataset_hash=challenger.dataset_hash,
        dataset_snapshot_key=snapshot_key(plan.dataset, challenger.dataset_hash),
        output_prefix=plan.layout.champion_eval.prefix,
        seed=manifest.seed,
        split_seed=plan.split_seed,
        test_fraction=plan.test_fraction,
        hyperparameters=manifest.hyperparameters,
        num_threads=manifest.num_threads,
        device="cpu",
        weights_key=version_key(plan.model_name, champion_version, WEIGHTS_FILE),
    )
    result = executor.run(job, manifest.trainer, store_settings, deadline_s=plan.deadline_s)
    if result.eval_set_hash != challenger.eval_set_hash:
        raise RuntimeError(
            f"champion was evaluated on eval set {result.eval_set_hash[:12]}, challenger on "
            f"{challenger.eval_set_hash[:12]}; refusing to compare different sets"
        )
    return result.metrics, "re-evaluated"


def evaluate_challenger(
    store: ArtifactStore,
    store_settings: StoreSettings,
    plan: RunPlan,
    challenger: TrainerResult,
    executor: TrainerExecutor,
    *,
    primary_metric: str = "macro_f1",
    min_improvement: float = 0.0,
) -> EvaluationRecord:
    alias = read_alias(store, plan.model_name, CHAMPION)
    challenger_score = _metric(challenger.metrics, primary_metric)
    if alias is None:
        champion_metrics, source, promote = None, "none", True
        reason = f"no champion yet; challenger {primary_metric}={challenger_score:.4f}"
    elif not plan.promote and load_manifest(store, plan.model_name, alias.version).dataset.eval_set_hash != challenger.eval_set_hash:
        # A run that can never promote does not pay for re-scoring the champion.
        champion_metrics, source, promote = None, "none", False
        reason = f"champion v{alias.version} was scored on another eval set; not re-scored for a non-promoting run"
    else:
        champion_metrics, source = champion_metrics_on(store, store_settings, plan, challenger, executor, alias.version)
        champion_score = _metric(champion_metrics, primary_metric)
        promote = challenger_score >= champion_score + min_improvement
        verdict = "beats" if promote else "does not beat"
        reason = (
            f"challenger {primary_metric}={challenger_score:.4f} {verdict} champion v{alias.version} "
            f"{champion_score:.4f} (+{min_improvement} required) on eval set {challenger.eval_set_hash[:12]}"
        )
    if not plan.promote:
        promote = False
        reason = f"backfill run: the champion alias is never moved ({reason})"
    record = EvaluationRecord(
        primary_metric=primary_metric,
        min_improvement=min_improvement,
        champion_version=alias.version if alias else None,
        champion_metrics=champion_metrics,
        champion_source=source,
        promote=promote,
        reason=reason,
    )
    store.put_bytes(plan.layout.evaluation, record.model_dump_json(indent=2).encode())
    return record
