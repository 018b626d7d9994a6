"""Bad input gets an error that names the problem, and nothing is registered."""
from __future__ import annotations

import pytest

from steps.data.validation_report import ValidationFailed
from steps.data.validation_run import validate_snapshot
from steps.store.local import LocalStore
from tests.conftest import PROJECT_ROOT, run_cli, write_digits_dataset
from tests.pipeline_fixtures import snapshot_of


@pytest.fixture
def catalog_with(tmp_path, monkeypatch):
    """A datasets catalog holding the real digits plus a dataset the test breaks."""
    def make(source):
        path = tmp_path / "datasets.yaml"
        path.write_text(
            f"digits:\n  source: {PROJECT_ROOT / 'datasets' / 'digits'}\n  schema: digits\n"
            f"broken:\n  source: {source}\n  schema: digits\n"
        )
        monkeypatch.setenv("TRAINYARD_DATASETS_CATALOG", str(path))
        return path
    return make


def labels_outside_the_label_set(root):
    write_digits_dataset(root, rows=200)
    text = (root / "examples.csv").read_text().splitlines()
    fields = text[5].split(",")
    text[5] = ",".join([fields[0], "42", *fields[2:]])  # label 42 is not in labels.csv
    (root / "examples.csv").write_text("\n".join(text) + "\n")
    return root


@pytest.mark.slow
def test_validation_failure_stops_the_dag_before_training_and_registers_nothing(
    airflow_db, store_root, tmp_path, catalog_with
):
    from trainyard.local_airflow import run_dag

    catalog_with(labels_outside_the_label_set(tmp_path / "broken"))
    run = run_dag("training_pipeline", {"dataset": "broken", "algorithm": "digits-cnn", "epochs": 1, "seed": 1})
    assert run.state == "failed" and run.failed_tasks == ["validate"]
    assert run.upstream_failed_tasks == ["evaluate", "register", "train"]  # nothing downstream ran
    store = LocalStore(store_root)
    assert not list(store.list_keys("models/"))
    reports = [k for k in store.list_keys("runs/") if k.endswith("validation.json")]
    assert len(reports) == 1 and b"42" in store.get_bytes(reports[0])  # the full report is kept


@pytest.mark.slow
def test_a_failed_step_leaves_one_readable_line_saying_why_beside_the_run(
    airflow_db, store_root, tmp_path, catalog_with
):
    from steps.lifecycle.plan import run_key_for
    from steps.lifecycle.run_failure import read_failures
    from trainyard.local_airflow import run_dag

    catalog_with(labels_outside_the_label_set(tmp_path / "broken"))
    run = run_dag("training_pipeline", {"dataset": "broken", "algorithm": "digits-cnn", "epochs": 1, "seed": 1})
    failures = read_failures(LocalStore(store_root), run_key_for(run.dag_id, run.run_id))
    assert list(failures) == ["validate"]
    failure = failures["validate"]
    assert failure.kind == "validation" and not failure.retryable
    assert "failed validation against schema 'digits'" in failure.reason and "\n" not in failure.reason


def test_validation_failure_message_is_a_short_list_naming_each_problem(local_store, tmp_path):
    source = labels_outside_the_label_set(tmp_path / "broken")
    (source / "examples.csv").write_text((source / "examples.csv").read_text().replace(",3,", ",,", 1))
    snapshot = snapshot_of(local_store, "broken", source)
    with pytest.raises(ValidationFailed) as err:
        validate_snapshot(local_store, "broken", snapshot.dataset_hash, "digits", "run-x")
    lines = str(err.value).splitlines()
    assert len(lines) <= 12
    assert any("label" in line and "42" in line for line in lines)
    assert any("null" in line.lower() for line in lines)


def test_cli_names_an_unknown_algorithm_and_lists_the_registered_ones(store_root):
    out = run_cli("run", "--dataset", "digits", "--algorithm", "digit-cnn", "--epochs", "1")
    assert out.returncode == 2
    assert "digit-cnn" in out.stderr and "digits-cnn" in out.stderr
    assert not (store_root / "models").exists()


def test_cli_names_an_unknown_dataset(store_root):
    out = run_cli("run", "--dataset", "nope", "--algorithm", "digits-cnn")
    assert out.returncode == 2 and "nope" in out.stderr


@pytest.mark.parametrize(
    "flag,value,field",
    [("--epochs", "-1", "epochs"), ("--learning-rate", "0", "learning_rate"), ("--batch-size", "0", "batch_size")],
)
def test_cli_rejects_out_of_bounds_params_before_anything_runs(store_root, flag, value, field):
    out = run_cli("run", "--dataset", "digits", "--algorithm", "digits-cnn", flag, value)
    assert out.returncode == 2 and field in out.stderr
    assert not store_root.exists()


def test_cli_snapshot_of_a_missing_dataset_directory_names_it(store_root, tmp_path):
    out = run_cli("snapshot", "toy", "--source", str(tmp_path / "missing"))
    assert out.returncode == 2 and "missing" in out.stderr and "does not exist" in out.stderr


@pytest.mark.parametrize("command", ["snapshot", "run", "demo", "reproduce", "lineage", "models"])
def test_every_subcommand_has_help(command):
    out = run_cli(command, "--help")
    assert out.returncode == 0 and "usage: trainyard" in out.stdout


@pytest.mark.parametrize("name", ["../evil", "/etc", "a/b", ".."])
def test_a_model_name_that_would_escape_the_store_is_refused_before_anything_runs(store_root, name):
    from steps.store.keys import InvalidName
    from tests.pipeline_fixtures import make_plan

    with pytest.raises(InvalidName, match="model name"):
        make_plan("escape", model_name=name)
    out = run_cli("reproduce", f"{name}@1")
    assert out.returncode == 2 and "model name" in out.stderr
    assert not store_root.exists()
