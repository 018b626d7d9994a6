"""Never the same work twice, end to end: the scheduled DAG on unchanged data and code is a no-op,
a changed byte of data trains again, and the CLI reuses a version until --force retrains it."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from steps.lifecycle.model_registry import load_manifest, registered_versions
from steps.lifecycle.plan import run_key_for
from steps.lifecycle.register import RegisteredVersion
from steps.store.local import LocalStore
from steps.store.run_layout import RunLayout
from tests.conftest import PROJECT_ROOT, run_cli
from trainyard.local_airflow import run_dag

pytestmark = pytest.mark.slow

SKIPPED_WHEN_REUSED = ["evaluate", "register", "train"]


def result_of(store: LocalStore, run) -> RegisteredVersion:
    return RegisteredVersion.model_validate_json(store.get_bytes(RunLayout(run_key_for(run.dag_id, run.run_id)).registered))


@pytest.fixture
def digits_copy(tmp_path, monkeypatch):
    """The demo digits data in a directory the test may change, under the catalog name `digits`."""
    source = tmp_path / "digits"
    shutil.copytree(PROJECT_ROOT / "datasets" / "digits", source)
    catalog = tmp_path / "datasets.yaml"
    catalog.write_text(f"digits:\n  source: {source}\n  schema: digits\n")
    monkeypatch.setenv("TRAINYARD_DATASETS_CATALOG", str(catalog))
    return source


def change_one_pixel(source) -> None:
    examples = sorted(source.glob("dt=*/examples.csv"))[-1]
    lines = examples.read_text().splitlines()
    fields = lines[1].split(",")
    fields[2] = "1" if fields[2] == "0" else "0"  # one pixel of one example; still a valid dataset
    lines[1] = ",".join(fields)
    examples.write_text("\n".join(lines) + "\n")


def test_scheduled_retraining_on_unchanged_data_trains_nothing_and_a_changed_byte_trains_again(
    airflow_db, store_root, digits_copy
):
    store = LocalStore(store_root)
    first = run_dag("scheduled_retraining", {"epochs": 1})
    assert first.state == "success" and first.skipped_tasks == [], first.failed_tasks
    trained = result_of(store, first)
    assert not trained.reused and trained.version == 1

    again = run_dag("scheduled_retraining", {"epochs": 1})

    assert again.state == "success" and again.skipped_tasks == SKIPPED_WHEN_REUSED
    reused = result_of(store, again)
    assert reused.reused and reused.version == 1 and reused.weights_sha256 == trained.weights_sha256
    again_layout = RunLayout(run_key_for(again.dag_id, again.run_id))
    assert not store.exists(again_layout.train.result) and not store.exists(again_layout.validation_report)
    assert registered_versions(store, "digits-digits-cnn") == [1]

    change_one_pixel(digits_copy)
    changed = run_dag("scheduled_retraining", {"epochs": 1})

    assert changed.state == "success" and changed.skipped_tasks == []
    retrained = result_of(store, changed)
    assert not retrained.reused and retrained.version == 2
    second = load_manifest(store, "digits-digits-cnn", 2)
    assert second.validation.reused_from is None  # new bytes: validated, not taken from v1's run
    assert second.training_identity.dataset_hash != load_manifest(store, "digits-digits-cnn", 1).dataset.dataset_hash


def test_cli_run_of_the_same_request_reuses_its_version_and_force_trains_identical_weights(airflow_db, store_root):
    request = ("run", "--dataset", "intents", "--algorithm", "intent-classification", "--epochs", "1", "--seed", "3")
    # The first training runs in-process (the same DAG the CLI runs), which spares one CLI start-up.
    first = run_dag("training_pipeline", {"dataset": "intents", "algorithm": "intent-classification", "epochs": 1,
                                          "seed": 3})
    assert first.state == "success" and result_of(LocalStore(store_root), first).version == 1

    second = run_cli(*request)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "reused model intents-intent-classification@1" in second.stdout
    assert "trainer not run" in second.stdout

    forced = run_cli(*request, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "registered model intents-intent-classification@2" in forced.stdout
    # The CLI trains in a warm interpreter (steps/warm/interpreter.py); v1 trained in a new process.
    # The steps' lines go to the run's full log, whose path the CLI prints.
    log_path = re.search(r"full log: (\S+)", forced.stdout).group(1)
    assert "running trainer intent-classification in a warm interpreter" in Path(log_path).read_text()
    store = LocalStore(store_root)
    v1, v2 = (load_manifest(store, "intents-intent-classification", v) for v in (1, 2))
    assert v2.weights_sha256 == v1.weights_sha256  # same identity, same weights, a new version
    assert v2.training_identity_sha256 == v1.training_identity_sha256
    assert registered_versions(store, "intents-intent-classification") == [1, 2]
