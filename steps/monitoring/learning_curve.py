"""A run's learning curve as a PNG: the training and test loss, and the objective (the gate's primary
metric on the test split) per epoch, drawn with matplotlib from the trainer's metrics.jsonl."""
from __future__ import annotations

import io

from steps.store import ArtifactStore
from steps.store.run_layout import TrainerOutputs
from steps.training.contract import EpochRecord, ResumeInfo, parse_epochs_jsonl

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 4.0, 100  # 1000 x 400 pixels


def render_learning_curve(
    records: list[EpochRecord], *, title: str, objective: str = "macro_f1", resumed: ResumeInfo | None = None
) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display on workers; must precede pyplot
    from matplotlib.figure import Figure

    if not records:
        raise ValueError(f"{title}: no epochs recorded; nothing to draw")
    epochs = [r.epoch for r in records]
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    loss_axes, objective_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, [r.train_loss for r in records], marker="o", label="train loss")
    test_loss = [(r.epoch, r.test_loss) for r in records if r.test_loss is not None]
    if test_loss:
        loss_axes.plot(*zip(*test_loss, strict=True), marker="o", label="test loss")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    points = [(r.epoch, r.metric(objective)) for r in records if r.metric(objective) is not None]
    if points:
        objective_axes.plot(*zip(*points, strict=True), marker="o", color="tab:green", label=f"test {objective}")
    objective_axes.set(xlabel="epoch", ylabel=objective, title=f"objective: test {objective}")
    for axes in (loss_axes, objective_axes):
        if resumed is not None:
            axes.axvline(resumed.from_epoch - 0.5, color="grey", linestyle="--", label=f"resumed at epoch {resumed.from_epoch}")
        axes.grid(alpha=0.3)
        axes.legend()
        axes.xaxis.get_major_locator().set_params(integer=True)
    figure.suptitle(title)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def store_learning_curve(
    store: ArtifactStore, outputs: TrainerOutputs, *, title: str, objective: str = "macro_f1", resumed: ResumeInfo | None = None
) -> str:
    """Draw the curve of the trainer outputs under `outputs` and store it beside them."""
    records = parse_epochs_jsonl(store.get_bytes(outputs.metrics))
    store.put_bytes(outputs.learning_curve, render_learning_curve(records, title=title, objective=objective, resumed=resumed))
    return outputs.learning_curve
