"""The generic, seeded training loop and evaluation every trainer shares."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from steps.training.contract import EvalMetrics
from steps.training.metrics import accuracy, confusion_matrix, macro_f1


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
    on_epoch: Callable[[dict], None] | None = None,
    evaluate_each_epoch: Callable[[], EvalMetrics] | None = None,
) -> int:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    model.to(device)
    # Data order comes from a generator seeded by the run's seed, never from global state.
    order = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(features, targets), batch_size=batch_size, shuffle=True, generator=order)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        total_loss = 0.0
        seen = 0
        for batch_x, batch_y in loader:
            batch_x, batch_y = batch_x.to(device), batch_y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(batch_x), batch_y)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(batch_y)  # detached: no autograd warning per run
            seen += len(batch_y)
        record = {"epoch": epoch, "train_loss": total_loss / max(seen, 1)}
        if evaluate_each_epoch is not None:
            metrics = evaluate_each_epoch()
            record.update(test_loss=metrics.loss, test_accuracy=metrics.accuracy, test_macro_f1=metrics.macro_f1)
        record["wall_time_s"] = round(time.perf_counter() - started, 4)
        if on_epoch is not None:
            on_epoch(record)
    return epochs


def evaluate(model, features, targets, *, n_classes: int, device: str, batch_size: int = 512) -> EvalMetrics:
    import torch

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
    return EvalMetrics(
        accuracy=accuracy(matrix),
        macro_f1=macro_f1(matrix),
        loss=total_loss / max(len(targets), 1),
        confusion_matrix=matrix.tolist(),
        n_examples=int(len(targets)),
    )
