"""What a trainer leaves behind, without training: registration and champion-gate tests build on it."""
from __future__ import annotations

from steps.lifecycle.evaluate import evaluate_challenger
from steps.lifecycle.manifest import EvaluationRecord
from steps.lifecycle.register import RegisteredVersion, register_model
from steps.store import StoreSettings
from steps.training.contract import EvalMetrics, TrainerResult

EVAL_SET_HASH = "e" * 64


def trainer_outputs(store, plan, weights: bytes, *, macro_f1: float = 0.9) -> TrainerResult:
    """A trainer's output prefix (bytes stand in for real weights) scoring macro_f1 on one shared eval set."""
    weights_info = store.put_bytes(f"{plan.output_prefix}/weights.safetensors", weights)
    store.put_bytes(f"{plan.output_prefix}/metrics.jsonl", b'{"epoch": 1}\n')
    store.put_bytes(f"runs/{plan.run_key}/validation.json", b"{}")
    store.put_bytes(f"runs/{plan.run_key}/evaluation.json", b"{}")
    metrics = EvalMetrics(accuracy=macro_f1, macro_f1=macro_f1, loss=0.1, confusion_matrix=[[1]], n_examples=1)
    result = TrainerResult(
        run_id=plan.run_key, algorithm=plan.algorithm, mode="train", dataset_hash="d" * 64,
        eval_set_hash=EVAL_SET_HASH, metrics=metrics, weights_key=weights_info.key,
        weights_sha256=weights_info.sha256, wall_time_s=1.0, torch_version="2.15.0", num_threads=1, device="cpu",
    )
    store.put_bytes(f"{plan.output_prefix}/result.json", result.model_dump_json().encode())
    return result


def evaluation(promote: bool, champion_version: int | None = None) -> EvaluationRecord:
    return EvaluationRecord(primary_metric="macro_f1", min_improvement=0.0, champion_version=champion_version,
                            champion_metrics=None, champion_source="none", promote=promote, reason="test")


def register(store, plan, snapshot, result, promote=True, champion_version=None) -> RegisteredVersion:
    return register_model(store, plan, snapshot, f"runs/{plan.run_key}/validation.json", 3, result,
                          evaluation(promote, champion_version))


def evaluate_and_register(store, plan, snapshot, result, *, min_improvement: float = 0.0) -> RegisteredVersion:
    """The real evaluate step (the champion's recorded metrics: same eval set) and the real register step."""
    record = evaluate_challenger(store, StoreSettings(), plan, result, executor=None,  # type: ignore[arg-type]
                                 min_improvement=min_improvement)
    return register_model(store, plan, snapshot, f"runs/{plan.run_key}/validation.json", 3, result, record)
