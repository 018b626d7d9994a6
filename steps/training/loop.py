"""The generic, seeded training loop and evaluation every trainer shares."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from steps.training.contract import EvalMetrics
from steps.training.distributed import (
    TrainingProcess,
    eval_shard,
    start_epoch,
    sum_confusion_over_ranks,
    sum_over_ranks,
    train_loader,
    wrap_model,
)
from steps.training.metrics import accuracy, confusion_matrix, macro_f1

ALONE = TrainingProcess()  # one process, no torchrun: the non-distributed path


def fit(
    model,
    features,
    targets,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    device: str,
    on_epoch: Callable[[dict], bool | None] | None = None,
    evaluate_each_epoch: Callable[[], EvalMetrics] | None = None,
    process: TrainingProcess = ALONE,
) -> int:
    import torch

    model.to(device)
    # Distributed: this rank's shard and a DDP wrapper (steps/training/distributed.py).
    loader = train_loader(features, targets, batch_size=batch_size, seed=seed, process=process)
    trained = wrap_model(model, process)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        start_epoch(loader, epoch)
        trained.train()
        total_loss, seen = 0.0, 0.0
        for batch_x, batch_y in loader:
            batch_x, batch_y = batch_x.to(device), batch_y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(trained(batch_x), batch_y)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(batch_y)  # detached: no autograd warning per run
            seen += len(batch_y)
        total_loss, seen = sum_over_ranks(process, total_loss, seen)
        record = {"epoch": epoch, "train_loss": total_loss / max(seen, 1)}
        if evaluate_each_epoch is not None:
            metrics = evaluate_each_epoch()
            record.update(test_loss=metrics.loss, test_accuracy=metrics.accuracy, test_macro_f1=metrics.macro_f1)
        record["wall_time_s"] = round(time.perf_counter() - started, 4)
        if on_epoch is not None and on_epoch(record):
            return epoch  # an epoch-end hook stopped training (a study's pruner)
    return epochs


def evaluate(
    model, features, targets, *, n_classes: int, device: str, batch_size: int = 512, process: TrainingProcess = ALONE
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
            total_loss += float(loss_fn(logits, batch_y))
            predictions.append(logits.argmax(dim=1).cpu().numpy())
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
