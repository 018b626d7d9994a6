"""The trainer side of the contract: read env, verify data, train or evaluate, write outputs.

A trainer image's entrypoint is a few lines: it defines its features and model and
calls `run_trainer(ALGORITHM)`. Everything else — contract parsing, hash verification,
splitting, determinism, checkpoints and resume, monitoring, outputs, data-parallel ranks
(distributed.py) — is shared, so two trainers behave identically.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import NoReturn

from steps.training.contract import (
    DEFAULT_SCRATCH_DIR,
    ENV_SCRATCH_DIR,
    EXIT_DIVERGED,
    EXIT_ERROR,
    EXIT_OK,
    XCOM_RETURN_PATH,
    EpochRecord,
    EvalMetrics,
    TrainerResult,
    TrainingJob,
    epochs_jsonl,
)
from steps.training.distributed import TrainingProcess, join_group, leave_group
from steps.training.prepared_data import TrainerAlgorithm, TrainerError

__all__ = ["TrainerAlgorithm", "TrainerError", "run_trainer", "train_or_evaluate"]


def _write_outputs(store, job: TrainingJob, weights_path: Path | None, epochs: list[EpochRecord], result: TrainerResult) -> None:
    # Files first, result summary last: a reader trusts a run output only once result.json exists.
    if weights_path is not None:
        store.put_file(job.weights_output_key, weights_path)
    if epochs:
        store.put_bytes(job.metrics_output_key, epochs_jsonl(epochs))
    store.put_bytes(job.result_output_key, result.model_dump_json(indent=2).encode())
    xcom_dir = Path(XCOM_RETURN_PATH).parent
    if xcom_dir.is_dir():
        Path(XCOM_RETURN_PATH).write_text(result.model_dump_json())


def train_or_evaluate(algorithm: TrainerAlgorithm, env: dict[str, str]) -> TrainerResult | None:
    """The TrainerResult on rank 0 (or a lone process); None on the other ranks, which write nothing."""
    from steps.training.determinism import configure_determinism, select_device

    started = time.perf_counter()
    job = TrainingJob.from_env(env)
    if job.algorithm != algorithm.name:
        raise TrainerError(f"this image trains {algorithm.name!r}, but the job asks for {job.algorithm!r}")
    device = select_device(job.device)
    configure_determinism(job.seed, job.num_threads, device)
    process = join_group(job, env, device)  # torchrun's group, or this process alone
    try:
        return _train_or_evaluate(algorithm, job, env, process, started)
    finally:
        leave_group(process)


def _train_or_evaluate(
    algorithm: TrainerAlgorithm, job: TrainingJob, env: dict[str, str], process: TrainingProcess, started: float
) -> TrainerResult | None:
    import torch
    from safetensors.torch import load_file, save_file

    from steps.hashing import sha256_file
    from steps.store import StoreSettings, open_store
    from steps.training.loop import evaluate
    from steps.training.prepared_data import prepare_data
    from steps.training.training_run import train_model

    device = process.device
    store = open_store(StoreSettings.from_env(env))

    scratch = Path(env.get(ENV_SCRATCH_DIR, DEFAULT_SCRATCH_DIR))
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="job-", dir=scratch))
    data = prepare_data(store, job, algorithm, work)  # re-verifies every hash
    if process.in_group:  # every rank reads and verifies the data itself
        print(f"trainyard-trainer: rank {process.rank} verified dataset {job.dataset_hash}", flush=True)

    resumed = stopped = None
    history: list[EpochRecord] = []
    if job.mode == "train":
        trained = train_model(job, algorithm, data, store, device=device, work=work, process=process)
        model, history = trained.state.model, trained.state.history
        resumed, stopped = trained.resumed, trained.fit.stopped
        weights_path = work / "weights.safetensors"
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(weights_path))
        weights_key = job.weights_output_key
    else:
        if not job.weights_key:
            raise TrainerError("evaluate mode needs TRAINYARD_WEIGHTS_KEY")
        model = algorithm.build_model(job.hyperparameters, data.n_classes)
        weights_path = work / "weights-in.safetensors"
        store.get_file(job.weights_key, weights_path)
        model.load_state_dict(load_file(str(weights_path)))
        weights_key = job.weights_key
    metrics: EvalMetrics = evaluate(model, data.test_x, data.test_y, n_classes=data.n_classes, device=device, process=process)
    if not process.is_main:
        return None  # rank 0 writes the one copy of the (identical) weights, metrics and result
    result = TrainerResult(
        run_id=job.run_id,
        algorithm=job.algorithm,
        mode=job.mode,
        dataset_hash=job.dataset_hash,
        eval_set_hash=data.eval_set_hash,
        metrics=metrics,
        weights_key=weights_key,
        weights_sha256=sha256_file(weights_path),
        train_examples=int(len(data.train_y)),
        epochs_completed=len(history),
        status="pruned" if stopped is not None and stopped.status == "pruned" else "completed",
        resumed=resumed,
        stopped=stopped,
        wall_time_s=round(time.perf_counter() - started, 3),
        torch_version=torch.__version__.split("+")[0],
        num_threads=torch.get_num_threads(),
        device=device,
        world_size=process.world_size,
        backend=process.backend,
    )
    _write_outputs(store, job, weights_path if job.mode == "train" else None, history, result)
    return result


def run_trainer(algorithm: TrainerAlgorithm) -> int:
    """Entrypoint wrapper: exit 0 with result.json written, or non-zero with a clear last line
    (EXIT_DIVERGED for a non-finite loss, EXIT_STALLED from the watchdog, EXIT_ERROR otherwise)."""
    from steps.training.loop import Diverged

    try:
        result = train_or_evaluate(algorithm, dict(os.environ))
    except Diverged as exc:  # the message is the whole story; a traceback would bury it
        print(f"trainyard-trainer: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_DIVERGED
    except Exception as exc:  # the last lines of the log are what the service shows the user
        traceback.print_exc()
        print(f"trainyard-trainer: error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    if result is None:
        return EXIT_OK  # a rank other than 0: rank 0 reports for the group
    print(
        f"trainyard-trainer: {result.mode} done: accuracy={result.metrics.accuracy:.4f} "
        f"macro_f1={result.metrics.macro_f1:.4f} weights_sha256={result.weights_sha256}",
        flush=True,
    )
    return EXIT_OK


def exit_trainer(code: int) -> NoReturn:
    """End the trainer process now. Everything it produced is in the store and its log is flushed;
    tearing down torch and the interpreter would only add a second or two to every run before the
    executor sees the exit code (docs/benchmarks.md)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
