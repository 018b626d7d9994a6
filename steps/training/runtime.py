"""The trainer side of the contract: read env, verify data, train or evaluate, write outputs.

A trainer image's entrypoint is a few lines: it defines its features and model and
calls `run_trainer(ALGORITHM)`. Everything else — contract parsing, hash verification,
splitting, determinism, outputs, data-parallel ranks (distributed.py) — is here, so two trainers
behave identically.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn, Protocol

from steps.training.contract import (
    DEFAULT_SCRATCH_DIR,
    ENV_SCRATCH_DIR,
    XCOM_RETURN_PATH,
    EvalMetrics,
    TrainerResult,
    TrainingJob,
)
from steps.training.distributed import TrainingProcess, join_group, leave_group, seed_this_rank, sum_over_ranks
from steps.training.split import eval_set_hash, example_content_hash, is_test_example


class TrainerAlgorithm(Protocol):
    name: str
    schema_name: str

    def featurize(self, frame, hyperparameters: dict[str, Any]):
        """Examples (a DataFrame of the schema's columns) -> a float/long feature tensor."""

    def build_model(self, hyperparameters: dict[str, Any], n_classes: int):
        """A freshly initialised torch.nn.Module (initialised from the global torch seed)."""


class TrainerError(RuntimeError):
    pass


def split_examples(frame, schema, split_seed: int, test_fraction: float):
    """Boolean test mask and content hashes; content excludes the example id."""
    import numpy as np

    content_columns = [c for c in frame.columns if c not in (schema.id_column, schema.label_column)]
    hashes = [
        example_content_hash([str(v) for v in row[:-1]], int(row[-1]))
        for row in frame[content_columns + [schema.label_column]].itertuples(index=False, name=None)
    ]
    mask = np.array([is_test_example(h, split_seed, test_fraction) for h in hashes], dtype=bool)
    return mask, hashes


def _epochs_jsonl(epochs: list[dict]) -> bytes:
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in epochs).encode()


def _write_outputs(store, job: TrainingJob, weights_path: Path | None, epochs: list[dict], result: TrainerResult) -> None:
    # Files first, result summary last: a reader trusts a run output only once result.json exists.
    if weights_path is not None:
        store.put_file(job.weights_output_key, weights_path)
    if epochs:
        store.put_bytes(job.metrics_output_key, _epochs_jsonl(epochs))
    store.put_bytes(job.result_output_key, result.model_dump_json(indent=2).encode())
    xcom_dir = Path(XCOM_RETURN_PATH).parent
    if xcom_dir.is_dir():
        Path(XCOM_RETURN_PATH).write_text(result.model_dump_json())


def _pruning_hook(job: TrainingJob, store):
    """A study's trial reports every epoch and may be stopped early (steps/training/pruning.py)."""
    if job.pruning is None or job.mode != "train":
        return None
    from steps.training.pruning import PruningHook

    return PruningHook(job.pruning, store)


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

    from steps.data.dataset_reader import read_examples
    from steps.data.schemas import get_schema
    from steps.data.snapshot import load_snapshot, materialize_snapshot
    from steps.hashing import sha256_file
    from steps.store import StoreSettings, open_store
    from steps.training.loop import evaluate, fit

    hp = job.hyperparameters
    device = process.device
    store = open_store(StoreSettings.from_env(env))
    schema = get_schema(algorithm.schema_name)

    scratch = Path(env.get(ENV_SCRATCH_DIR, DEFAULT_SCRATCH_DIR))
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="job-", dir=scratch))
    snapshot = load_snapshot(store, job.dataset_name, job.dataset_hash)
    data_dir = materialize_snapshot(store, snapshot, work / "dataset")  # re-verifies every hash
    if process.in_group:  # every rank reads and verifies the data itself
        print(f"trainyard-trainer: rank {process.rank} verified dataset {job.dataset_hash}", flush=True)
    frame, labels = read_examples(data_dir, schema)
    n_classes = max(labels) + 1

    test_mask, content_hashes = split_examples(frame, schema, job.split_seed, job.test_fraction)
    eval_hash = eval_set_hash([h for h, is_test in zip(content_hashes, test_mask, strict=True) if is_test])
    targets = torch.tensor(frame[schema.label_column].astype(int).to_numpy(), dtype=torch.long)
    features = algorithm.featurize(frame, hp)
    test_x, test_y = features[torch.from_numpy(test_mask)], targets[torch.from_numpy(test_mask)]
    train_x, train_y = features[torch.from_numpy(~test_mask)], targets[torch.from_numpy(~test_mask)]
    if len(test_y) == 0 or len(train_y) == 0:
        raise TrainerError(f"split left {len(train_y)} training and {len(test_y)} test examples; need both")

    model = algorithm.build_model(hp, n_classes)
    seed_this_rank(job.seed, process)
    epochs_log: list[dict] = []
    weights_path: Path | None = None
    pruning = _pruning_hook(job, store) if process.is_main else None  # rank 0 alone reports to the study
    if job.mode == "train":

        def on_epoch(record: dict) -> bool:
            stop = False
            if process.is_main:  # every rank holds the same all-reduced record; rank 0 alone writes it
                epochs_log.append(record)
                print(json.dumps(record), flush=True)
                # Rewritten after every epoch so a watcher (`trainyard status`) sees a running trainer's
                # progress; result.json, written last, still marks the outputs complete.
                store.put_bytes(job.metrics_output_key, _epochs_jsonl(epochs_log))
                stop = pruning.after_epoch(record) if pruning else False
            if job.pruning is None:
                return stop
            # Rank 0 decides; every rank stops with it, or the others would wait at the next all-reduce.
            return sum_over_ranks(process, float(stop))[0] > 0

        epochs_done = fit(
            model,
            train_x,
            train_y,
            epochs=int(hp["epochs"]),
            learning_rate=float(hp["learning_rate"]),
            batch_size=int(hp["batch_size"]),
            seed=job.seed,
            device=device,
            on_epoch=on_epoch,
            evaluate_each_epoch=lambda: evaluate(model, test_x, test_y, n_classes=n_classes, device=device, process=process),
            process=process,
        )
        weights_path = work / "weights.safetensors"
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(weights_path))
        weights_key = job.weights_output_key
    else:
        if not job.weights_key:
            raise TrainerError("evaluate mode needs TRAINYARD_WEIGHTS_KEY")
        weights_path_in = work / "weights-in.safetensors"
        store.get_file(job.weights_key, weights_path_in)
        model.load_state_dict(load_file(str(weights_path_in)))
        weights_key = job.weights_key
        epochs_done = 0
    metrics: EvalMetrics = evaluate(model, test_x, test_y, n_classes=n_classes, device=device, process=process)
    if not process.is_main:
        return None  # rank 0 writes the one copy of the (identical) weights, metrics and result
    weights_sha = sha256_file(weights_path if weights_path is not None else weights_path_in)
    result = TrainerResult(
        run_id=job.run_id,
        algorithm=job.algorithm,
        mode=job.mode,
        dataset_hash=job.dataset_hash,
        eval_set_hash=eval_hash,
        metrics=metrics,
        weights_key=weights_key,
        weights_sha256=weights_sha,
        train_examples=int(len(train_y)),
        epochs_completed=epochs_done,
        status="pruned" if pruning and pruning.pruned else "completed",
        wall_time_s=round(time.perf_counter() - started, 3),
        torch_version=torch.__version__.split("+")[0],
        num_threads=torch.get_num_threads(),
        device=device,
        world_size=process.world_size,
        backend=process.backend,
    )
    _write_outputs(store, job, weights_path if job.mode == "train" else None, epochs_log, result)
    return result


def run_trainer(algorithm: TrainerAlgorithm) -> int:
    """Entrypoint wrapper: exit 0 with result.json written, or non-zero with a clear last line."""
    try:
        result = train_or_evaluate(algorithm, dict(os.environ))
    except Exception as exc:  # the last lines of the log are what the service shows the user
        traceback.print_exc()
        print(f"trainyard-trainer: error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    if result is None:
        return 0  # a rank other than 0: rank 0 reports for the group
    print(
        f"trainyard-trainer: {result.mode} done: accuracy={result.metrics.accuracy:.4f} "
        f"macro_f1={result.metrics.macro_f1:.4f} weights_sha256={result.weights_sha256}",
        flush=True,
    )
    return 0


def exit_trainer(code: int) -> NoReturn:
    """End the trainer process now. Everything it produced is in the store and its log is flushed;
    tearing down torch and the interpreter would only add a second or two to every run before the
    executor sees the exit code (docs/benchmarks.md)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
