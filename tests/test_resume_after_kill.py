"""The proof: kill -9 the trainer in the middle of epoch 3 of 6 while training_pipeline runs on Airflow
(dag.test, subprocess executor); Airflow retries the train task, the trainer resumes from the
checkpoint of epoch 2, and the registered weights are bit-identical to an uninterrupted run's
(`trainyard reproduce` retrains from scratch under a run key of its own, so it never resumes).

One pipeline run is shared by the tests of this module: the resume, the lineage and status readout,
the learning curve, the per-epoch log lines and TensorBoard on the registered model."""
from __future__ import annotations

import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from steps.lifecycle.manifest import ModelManifest
from steps.store import StoreSettings
from steps.store.local import LocalStore
from tests.conftest import run_cli
from tests.tensorboard_http import TENSORBOARD_START_S, get_json, start_tensorboard
from tests.trainer_kill import KillReport, kill_mid_epoch

pytestmark = pytest.mark.slow

CONF = {"dataset": "digits", "algorithm": "digits-cnn", "epochs": 6, "batch_size": 16, "seed": 11}


@dataclass
class ResumedRun:
    store: LocalStore
    store_root: Path
    run: object
    kill: KillReport
    manifest: ModelManifest
    env: dict[str, str]
    between_tries: object  # the run's stored status (steps/lifecycle/run_status.py) once try 1's failure was recorded


@pytest.fixture(scope="module")
def resumed_run(airflow_db, tmp_path_factory) -> ResumedRun:
    from steps.lifecycle.model_registry import resolve_model_ref
    from trainyard.local_airflow import run_dag

    root = tmp_path_factory.mktemp("resume") / "store"
    env = {
        "TRAINYARD_STORE": "local",
        "TRAINYARD_STORE_ROOT": str(root),
        "TRAINYARD_STAT_CACHE": str(root.parent / "stat-cache.sqlite"),
        "TRAINYARD_RETRY_DELAY_S": "0",
    }
    store = LocalStore(root)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        kill = kill_mid_epoch(store, {"TRAINYARD_STORE_ROOT": str(root)}, epoch=3)
        between_tries: list = []
        threading.Thread(target=_read_status_between_tries, args=(store, between_tries), daemon=True).start()
        run = run_dag("training_pipeline", CONF)
        kill.done.wait(timeout=60)
    manifest = resolve_model_ref(store, "digits-digits-cnn@1") if run.state == "success" else None
    return ResumedRun(store, root, run, kill, manifest, env, between_tries[0] if between_tries else None)


def _read_status_between_tries(store: LocalStore, found: list, timeout_s: float = 900) -> None:
    """What `trainyard status` reads from the store while the run is in progress: the moment the killed try's
    failure record appears, before the retry has finished (its result.json comes last)."""
    from steps.lifecycle.run_status import read_run_status

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        keys = [k for k in store.list_keys("runs/") if k.endswith("/failures/train.json")]
        if keys:
            found.append(read_run_status(store, keys[0].split("/")[1]))
            return
        time.sleep(0.05)


def _train_tries(run) -> int:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        dagrun = session.query(DagRun).filter(DagRun.run_id == run.run_id, DagRun.dag_id == run.dag_id).one()
        return next(ti.try_number for ti in dagrun.get_task_instances(session=session) if ti.task_id == "train")


def test_a_trainer_killed_mid_epoch_3_resumes_on_the_retry_to_bit_identical_weights(resumed_run):
    from steps.executors.subprocess_executor import SubprocessExecutor
    from steps.lifecycle.reproduce import reproduce_model
    from steps.store import StoreSettings

    kill = resumed_run.kill
    assert kill.error is None, kill.error
    assert kill.previous_checkpoint_existed and not kill.own_checkpoint_existed  # killed inside epoch 3
    assert resumed_run.run.state == "success", resumed_run.run
    assert _train_tries(resumed_run.run) == 2  # the kill cost one retry

    manifest = resumed_run.manifest
    assert manifest.resumed is not None and manifest.resumed.from_epoch == 3
    assert manifest.resumed.checkpoint_key.endswith("/train/checkpoints/epoch-0002/checkpoint.json")
    assert manifest.epochs_completed == 6

    # An uninterrupted run of the same manifest, from epoch 1 (its own run key: never this run's checkpoints).
    settings = StoreSettings(backend="local", root=str(resumed_run.store_root))
    report, uninterrupted = reproduce_model(manifest, SubprocessExecutor(), settings)
    assert uninterrupted.resumed is None and uninterrupted.epochs_completed == 6
    assert report.weights_match, report.summary()
    assert uninterrupted.weights_sha256 == manifest.weights_sha256


def test_the_train_task_log_shows_each_epoch_with_metrics_and_an_eta(resumed_run):
    from steps.store.run_layout import RunLayout

    log = resumed_run.store.get_bytes(RunLayout(resumed_run.manifest.run_key).train.trainer_log).decode()
    assert re.search(r"trainyard-trainer: resuming at epoch 3 of 6 from runs/\S+/epoch-0002/checkpoint.json", log)
    lines = [line for line in log.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["3/6", "4/6", "5/6", "6/6"]  # the retry's epochs, once each
    for line in lines[:-1]:
        assert re.search(r"train_loss=\d\.\d{4} test_loss=\d\.\d{4} test_accuracy=\d\.\d{4} test_macro_f1=\d\.\d{4}", line)
        assert re.search(r"ETA \d+(m\d\ds|s)\)$", line)
    assert lines[-1].endswith("done)")


def test_lineage_shows_the_resume_the_failed_try_and_the_learning_curve(resumed_run):
    out = run_cli("lineage", "digits-digits-cnn@1", env=resumed_run.env)
    assert out.returncode == 0, out.stderr
    assert "training          : 6 epochs; resumed: yes: at epoch 3 from the checkpoint of epoch 2" in out.stdout
    assert re.search(r"earlier try failed: train on try 1 \(trainer-exit\): trainer 'digits-cnn' exited with code -9", out.stdout)
    assert "learning curve    : models/digits-digits-cnn/versions/1/learning-curve.png" in out.stdout
    assert "tensorboard       : models/digits-digits-cnn/versions/1/events.tfevents" in out.stdout


def test_the_run_status_reads_the_failure_the_resume_and_the_registration(resumed_run):
    from steps.lifecycle.run_status import read_run_status, status_lines

    status = read_run_status(resumed_run.store, resumed_run.manifest.run_key)
    assert status.training.finished and status.training.epochs_completed == 6
    assert status.training.resumed.from_epoch == 3
    assert status.succeeded_after_failure == ["train"]
    assert status.registered.model_name == "digits-digits-cnn" and status.registered.version == 1
    text = "\n".join(status_lines(status))
    assert "finished 6 of 6 epochs" in text
    assert "earlier try failed: train on try 1 (trainer-exit, retryable)" in text


def _airflow_tasks(run) -> list:
    """The run's task states as Airflow's REST API hands them to the client (from the same metadata database)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    from trainyard.client.records import TaskState

    with create_session() as session:
        dagrun = session.query(DagRun).filter(DagRun.run_id == run.run_id, DagRun.dag_id == run.dag_id).one()
        return [TaskState(task_id=ti.task_id, state=ti.state, try_number=ti.try_number, duration_s=ti.duration)
                for ti in sorted(dagrun.get_task_instances(session=session), key=lambda ti: ti.start_date)]


def test_trainyard_status_says_the_run_resumed_from_which_checkpoint_after_which_failure(resumed_run):
    from trainyard.client.records import RunStatus
    from trainyard.client.render import status_lines
    from trainyard.client.store_readout import StoreReadout

    run = resumed_run.run
    readout = StoreReadout(lambda: StoreSettings(backend="local", root=str(resumed_run.store_root)))
    progress, note = readout.progress(run.dag_id, run.run_id)
    assert note is None
    status = RunStatus(dag_id=run.dag_id, run_id=run.run_id, url="http://airflow/run", state="success",
                       tasks=_airflow_tasks(run), epochs=progress.epochs, epochs_planned=6,
                       stored=readout.run_status(run.dag_id, run.run_id))
    text = "\n".join(status_lines(status))
    assert re.search(r"^  train +success +try 2 ", text, re.M)
    assert "  training          : finished 6 of 6 epochs (last: train_loss=" in text
    assert text.count("; newest checkpoint: epoch 6") == 1
    assert re.search(r"  resumed           : yes: at epoch 3 from the checkpoint of epoch 2 \(runs/\S+/train/"
                     r"checkpoints/epoch-0002/checkpoint.json\)", text)
    assert "  earlier try failed: train on try 1 (trainer-exit, retryable): trainer 'digits-cnn' exited with code -9" in text


def test_trainyard_status_between_tries_says_the_train_task_failed_why_and_that_it_will_retry(resumed_run):
    from trainyard.client.records import RunStatus, TaskState
    from trainyard.client.render import changes, status_lines

    stored = resumed_run.between_tries
    assert stored is not None, "the failure of try 1 was never recorded"
    assert stored.training is not None and not stored.training.finished
    newest = stored.training.newest_checkpoint_epoch
    assert newest is not None and newest >= 2  # the retry resumes from it
    # Between tries Airflow reports the train task up_for_retry (the store's records are the real ones).
    status = RunStatus(dag_id="training_pipeline", run_id=resumed_run.run.run_id, url="http://airflow/run",
                       state="running", tasks=[TaskState(task_id="train", state="up_for_retry", try_number=1)],
                       stored=stored)
    text = "\n".join(status_lines(status))
    assert "not finished (last: train_loss=" in text and f"; newest checkpoint: epoch {newest}" in text
    assert ("  failed, will retry: train on try 1 (trainer-exit, retryable): trainer 'digits-cnn' exited with code -9"
            in text)
    watched = changes(None, status)  # what `--watch` prints as the task goes up for retry
    assert "train: up_for_retry" in watched
    assert any(line.startswith("train: failed, will retry: train on try 1 (trainer-exit") for line in watched)


def test_the_learning_curve_png_is_stored_with_the_run_and_the_version(resumed_run):
    import io

    from matplotlib.image import imread

    from steps.lifecycle.model_registry import version_key
    from steps.monitoring.learning_curve import DPI, HEIGHT_IN, WIDTH_IN
    from steps.store.run_layout import RunLayout

    run_png = resumed_run.store.get_bytes(RunLayout(resumed_run.manifest.run_key).train.learning_curve)
    assert resumed_run.store.get_bytes(version_key("digits-digits-cnn", 1, "learning-curve.png")) == run_png
    assert run_png.startswith(b"\x89PNG\r\n\x1a\n") and len(run_png) > 20_000  # two plotted panels, not a blank page
    pixels = imread(io.BytesIO(run_png))
    assert pixels.shape[:2] == (int(HEIGHT_IN * DPI), int(WIDTH_IN * DPI))
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::97]}) > 20  # lines and text in colours


def test_tensorboard_serves_the_scalars_of_a_registered_model_and_of_every_run(resumed_run):
    from steps.training.contract import parse_epochs_jsonl

    manifest = resumed_run.manifest
    run_key = manifest.run_key
    # A model version (its event file checked against the manifest) and, as the compose service does,
    # every run that wrote events: this one, and whatever else the store holds.
    proc, url = start_tensorboard(resumed_run.env, "digits-digits-cnn@1", "--all-runs")
    try:
        deadline = time.monotonic() + TENSORBOARD_START_S
        tags = get_json(url + "data/plugin/scalars/tags", deadline, lambda a: {"digits-digits-cnn@1", run_key} <= set(a))
        assert {"loss/train", "loss/test", "metrics/macro_f1", "metrics/accuracy"} <= set(tags["digits-digits-cnn@1"])

        records = parse_epochs_jsonl(resumed_run.store.get_bytes("models/digits-digits-cnn/versions/1/metrics.jsonl"))
        query = urllib.parse.urlencode({"run": "digits-digits-cnn@1", "tag": "metrics/macro_f1"})
        points = get_json(f"{url}data/plugin/scalars/scalars?{query}", deadline, lambda a: len(a) == 6)
        assert [step for _, step, _ in points] == [1, 2, 3, 4, 5, 6]  # each epoch once, though two tries wrote them
        assert [value for _, _, value in points] == pytest.approx([r.test_macro_f1 for r in records], rel=1e-6)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
