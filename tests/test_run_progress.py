"""A running trainer can be watched through the store: metrics.jsonl is rewritten after every epoch,
and read_run_progress turns a run's records into epochs, completion and failure reasons."""
from __future__ import annotations

import json

from steps.executors.subprocess_executor import SubprocessExecutor
from steps.lifecycle.run_failure import failure_from_exception, record_failure
from steps.lifecycle.run_progress import read_run_progress
from steps.lifecycle.train import run_training
from steps.store import StoreSettings
from steps.store.run_layout import RunLayout
from tests.pipeline_fixtures import make_plan, snapshot_of

EPOCHS = 3


def _epoch_files(store_root) -> set[tuple[int, ...]]:
    """The epochs of every metrics.jsonl version the local store holds (it keeps each content once,
    by sha256, so a rewrite leaves the earlier version's bytes behind)."""
    found = set()
    for blob in (store_root / ".objects").iterdir():
        try:
            records = [json.loads(line) for line in blob.read_text().splitlines()]
        except (ValueError, UnicodeDecodeError):
            continue
        if records and all(isinstance(r, dict) and set(r) >= {"epoch", "train_loss"} for r in records):
            found.add(tuple(r["epoch"] for r in records))
    return found


def test_the_trainer_writes_its_epochs_so_far_after_every_epoch(local_store, store_root):
    snapshot = snapshot_of(local_store, "intents")
    plan = make_plan("progress", dataset="intents", algorithm="intent-classification", epochs=EPOCHS)
    run_training(plan, snapshot.dataset_hash, SubprocessExecutor(), StoreSettings(backend="local", root=str(store_root)))

    # A watcher polling during training could have read one, then two, then three epochs.
    assert _epoch_files(store_root) == {(1,), (1, 2), (1, 2, 3)}
    progress = read_run_progress(local_store, plan.run_key)
    assert [e.epoch for e in progress.epochs] == [1, 2, 3]
    assert progress.trainer_finished and progress.failures == {}
    assert progress.latest_epoch.metrics_line.startswith("train_loss=")


def test_progress_keeps_readable_epochs_and_reports_why_a_step_failed(local_store):
    layout = RunLayout("some-run")
    local_store.put_bytes(layout.train.metrics, b'{"epoch": 1, "train_loss": 0.9}\nnot json\n'
                                               b'{"epoch": 2, "train_loss": 0.5, "grad_norm": 1.5}\n')
    record_failure(local_store, failure_from_exception("some-run", "train", RuntimeError("out of patience\nmore")))

    progress = read_run_progress(local_store, "some-run")

    assert [e.epoch for e in progress.epochs] == [1, 2]
    assert progress.epochs[1].model_extra == {"grad_norm": 1.5}  # what a trainer adds is kept
    assert not progress.trainer_finished
    assert progress.failures["train"].summary == "train failed (error): out of patience"
    assert read_run_progress(local_store, "another-run").epochs == []


def test_a_failure_says_whether_airflow_will_try_the_step_again(local_store):
    from steps.lifecycle.run_status import failure_lines, read_run_status

    class Stalled(RuntimeError):
        failure_kind = "stalled"

    class Diverged(RuntimeError):
        failure_kind = "diverged"

    record_failure(local_store, failure_from_exception("r", "train", Stalled("no batch for 60s"), try_number=2))
    record_failure(local_store, failure_from_exception("r", "validate", Diverged("nan"), try_number=1))
    status = read_run_status(local_store, "r")

    def train_line(**airflow) -> str:
        return next(line for line in failure_lines(status, **airflow) if ": train on try 2" in line).strip()

    assert train_line(retrying={"train"}) == "failed, will retry: train on try 2 (stalled, retryable): no batch for 60s"
    assert train_line(ended_failed={"train"}) == "failed            : train on try 2 (stalled, retryable, no tries left): no batch for 60s"
    assert train_line(ended_failed=set()) == "earlier try failed: train on try 2 (stalled, retryable): no batch for 60s"
    assert train_line() == "failed            : train on try 2 (stalled, retryable): no batch for 60s"  # the store alone
    assert failure_lines(status, ended_failed={"validate"})[0].strip() == (
        "failed            : validate on try 1 (diverged, not retryable): nan"
    )
