"""The seeded training loop and the evaluation every trainer shares, and the loop's extension points:

- `TrainingState` (training_state.py) is all the loop reads and writes; a checkpoint saves it and a
  resumed run starts from it at `state.epochs_completed + 1`;
- `EpochHook`s run, in order, after each epoch's record is made; one may end training by returning a
  `StopRecord` (checkpointing, metrics upload, TensorBoard and the progress line are hooks; a pruner is
  another);
- `on_progress` is called after every batch (and evaluation batch): the stall watchdog listens to it;
- `process` is this process's place among torchrun's ranks (steps/training/distributed.py): each rank
  trains its shard through DistributedDataParallel, the loss and metrics are all-reduced, and every
  rank stops after an epoch when the hooks (which the caller gives rank 0 alone) stop it.

A non-finite loss stops the loop at once with `Diverged`, before the optimizer can apply it; under
torchrun every batch's loss is averaged over the ranks first, so every rank stops at the same batch
with the same words (a NaN on one rank is a NaN in the mean).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from steps.training.contract import EpochRecord, EvalMetrics, StopRecord
from steps.training.distributed import (
    TrainingProcess,
    eval_shard,
    gather_from_ranks,
    mean_over_ranks,
    start_epoch,
    sum_confusion_over_ranks,
    sum_over_ranks,
    train_loader,
    wrap_model,
)
from steps.training.metrics import accuracy, confusion_matrix, macro_f1
from steps.training.rng_state import RngSnapshot
from steps.training.training_state import TrainingState

ALONE = TrainingProcess()  # one process, no torchrun: the non-distributed path


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; another try with the same inputs would too."""


class EpochHook(Protocol):
    def on_epoch_end(self, state: TrainingState, record: EpochRecord) -> StopRecord | None:
        """Called after every epoch, in order; return a StopRecord to end training after this epoch."""


@dataclass(frozen=True)
class FitOutcome:
    epochs_completed: int
    stopped: StopRecord | None = None


def fit(
    state: TrainingState,
    features,
    targets,
    *,
    epochs: int,
    batch_size: int,
    hooks: Sequence[EpochHook] = (),
    evaluate_each_epoch: Callable[[], EvalMetrics] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
    process: TrainingProcess = ALONE,
) -> FitOutcome:
    """`seed`: the run's seed, which shuffles a DistributedSampler's shards (a lone process shuffles
    with `state.data_order`, which a checkpoint saves)."""
    import torch

    loader = train_loader(
        features, targets, batch_size=batch_size, seed=seed, process=process, generator=state.data_order
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    model, optimizer, device = wrap_model(state.model, process), state.optimizer, state.device
    for epoch in range(state.epochs_completed + 1, epochs + 1):
        state.begin_epoch()
        start_epoch(loader, epoch)
        started = time.perf_counter()
        model.train()
        total_loss, seen = 0.0, 0.0  # floats: all-reduced as one float64 tensor under torchrun
        for batch, (batch_x, batch_y) in enumerate(loader, 1):
            batch_x, batch_y = batch_x.to(device), batch_y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(batch_x), batch_y)
            value = loss.detach().item()
            agreed = mean_over_ranks(process, value)
            loss.backward()  # gradients of a non-finite loss are computed but never applied
            checked = agreed()
            if not math.isfinite(checked):
                raise Diverged(
                    f"diverged: training loss is {checked} at epoch {epoch}, batch {batch} of {len(loader)} "
                    f"(learning rate {state.learning_rate:g}); a retry would repeat it: lower the learning rate"
                )
            optimizer.step()
            total_loss += value * len(batch_y)
            seen += len(batch_y)
            if on_progress is not None:
                on_progress(epoch, batch)
        total_loss, seen = sum_over_ranks(process, total_loss, seen)
        learning_rate = state.learning_rate  # the rate this epoch trained with
        if state.scheduler is not None:
            state.scheduler.step()
        metrics = evaluate_each_epoch() if evaluate_each_epoch is not None else None
        record = EpochRecord(
            epoch=epoch,
            epochs_planned=epochs,
            train_loss=total_loss / max(seen, 1),
            test_loss=metrics.loss if metrics else None,
            test_accuracy=metrics.accuracy if metrics else None,
            test_macro_f1=metrics.macro_f1 if metrics else None,
            learning_rate=learning_rate,
            wall_time_s=round(time.perf_counter() - started, 4),
            finished_at_unix_s=round(time.time(), 3),
        )
        state.end_epoch(record)
        if process.in_group:  # before the hooks: rank 0's checkpoint holds every rank's RNG streams
            shared = gather_from_ranks(process, state.rng.to_payload())
            state.share_ranks_rng([RngSnapshot.from_payload(payload) for payload in shared])
        stop = None
        for hook in hooks:
            stop = hook.on_epoch_end(state, record)
            if stop is not None:
                break
        # Every rank stops with rank 0 (a pruned trial), or the others would wait at the next all-reduce.
        if process.in_group and sum_over_ranks(process, float(stop is not None))[0] > 0 and stop is None:
            stop = StopRecord(status="stopped", reason="rank 0 ended training", after_epoch=epoch)
        if stop is not None:
            return FitOutcome(epochs_completed=epoch, stopped=stop)
    return FitOutcome(epochs_completed=state.epochs_completed)


def evaluate(
    model,
    features,
    targets,
    *,
    n_classes: int,
    device: str,
    batch_size: int = 512,
    on_progress: Callable[[], None] | None = None,
    process: TrainingProcess = ALONE,
) -> EvalMetrics:
    import torch

    n_examples = len(targets)
    shard = eval_shard(process, n_examples)  # distributed: each rank scores its part, then all are summed
    features, targets = features[shard], targets[shard]
    model.to(device)
    model.eval()
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    total_loss = 0.0
    predictions = []
    with torch.no_grad():
        for start in range(0, len(targets), batch_size):
            batch_x = features[start : start + batch_size].to(device)
            batch_y = targets[start : start + batch_size].to(device)
            logits = model(batch_x)
            total_loss += loss_fn(logits, batch_y).item()
            predictions.append(logits.argmax(dim=1).cpu().numpy())
            if on_progress is not None:
                on_progress()
    y_pred = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(targets.cpu().numpy(), y_pred, n_classes)
    matrix, total_loss = sum_confusion_over_ranks(process, matrix, total_loss)
    return EvalMetrics(
        accuracy=accuracy(matrix),
        macro_f1=macro_f1(matrix),
        loss=total_loss / max(n_examples, 1),
        confusion_matrix=matrix.tolist(),
        n_examples=int(n_examples),
    )
