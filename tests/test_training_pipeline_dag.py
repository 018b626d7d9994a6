"""The whole training_pipeline DAG through dag.test(), on the embedded defaults."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from steps.lifecycle.model_registry import list_models, load_manifest, read_alias, registered_versions
from steps.lifecycle.plan import run_key_for
from steps.lifecycle.register import RegisteredVersion
from steps.store.local import LocalStore
from trainyard.local_airflow import load_dag, run_dag

pytestmark = pytest.mark.slow

FAST = {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "seed": 7}


def registered_from(store: LocalStore, run) -> RegisteredVersion:
    key = f"runs/{run_key_for(run.dag_id, run.run_id)}/registered.json"
    return RegisteredVersion.model_validate_json(store.get_bytes(key))


def test_dag_file_parses_without_heavy_imports():
    code = (
        "import sys; from trainyard.local_airflow import configure_airflow_env, load_dag; configure_airflow_env(); "
        "load_dag('training_pipeline'); "
        "heavy = [m for m in ('torch', 'great_expectations', 'minio', 'pandas') if m in sys.modules]; "
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in out.stdout + "\n" and "HEAVY=" in out.stdout, out.stdout[-500:]


def test_dag_wires_the_five_steps_in_order():
    dag = load_dag("training_pipeline")
    chain = ["plan", "snapshot", "validate", "train", "evaluate", "register"]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        assert upstream in dag.get_task(downstream).upstream_task_ids
    params = dag.params
    assert set(params.keys()) >= {"dataset", "algorithm", "epochs", "learning_rate", "batch_size", "seed"}
    assert params.get_param("algorithm").schema["enum"] == ["digits-cnn", "intent-classification"]
    for name in ("epochs", "learning_rate", "batch_size", "seed"):
        assert params.get_param(name).description


@pytest.mark.parametrize(
    "dataset,algorithm,params",
    [
        ("digits", "digits-cnn", FAST),
        ("intents", "intent-classification", {**FAST, "epochs": 2, "batch_size": 8, "learning_rate": 0.05}),
    ],
)
def test_pipeline_registers_a_champion_with_full_lineage(airflow_db, store_root, dataset, algorithm, params):
    run = run_dag("training_pipeline", {"dataset": dataset, "algorithm": algorithm, **params})
    assert run.state == "success", run.failed_tasks
    store = LocalStore(store_root)
    registered = registered_from(store, run)
    manifest = load_manifest(store, registered.model_name, registered.version)
    assert registered.model_name == f"{dataset}-{algorithm}" and registered.version == 1
    assert manifest.metrics.accuracy >= 0.8
    assert manifest.trainer.code_sha256 and manifest.dataset.dataset_hash and manifest.dataset.eval_set_hash
    assert manifest.airflow.dag_id == "training_pipeline" and manifest.airflow.run_id == run.run_id
    assert manifest.seed == 7 and manifest.hyperparameters["epochs"] == 2 and manifest.num_threads == 1
    assert {f.name for f in manifest.files} >= {"weights.safetensors", "metrics.jsonl", "result.json", "validation.json"}
    metrics_lines = store.get_bytes(f"models/{registered.model_name}/versions/1/metrics.jsonl").decode().splitlines()
    assert [json.loads(line)["epoch"] for line in metrics_lines] == [1, 2]
    assert read_alias(store, registered.model_name).version == 1


def test_second_run_on_same_eval_set_is_compared_with_the_champion(airflow_db, store_root):
    first = run_dag("training_pipeline", {"dataset": "digits", "algorithm": "digits-cnn", **FAST})
    weaker = run_dag("training_pipeline", {"dataset": "digits", "algorithm": "digits-cnn", **FAST, "epochs": 1, "learning_rate": 0.0001})
    assert first.state == weaker.state == "success"
    store = LocalStore(store_root)
    assert registered_versions(store, "digits-digits-cnn") == [1, 2]
    second = load_manifest(store, "digits-digits-cnn", 2)
    assert second.evaluation.champion_version == 1 and second.evaluation.champion_source == "recorded"
    assert second.evaluation.promote is False and "does not beat" in second.evaluation.reason
    assert read_alias(store, "digits-digits-cnn").version == 1  # the gate kept the champion
    assert list_models(store) == ["digits-digits-cnn"]


@pytest.mark.parametrize(
    "bad,words",
    [
        ({"epochs": -1}, "epochs"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"algorithm": "digit-cnn"}, "algorithm"),
        ({"dataset": "nope"}, "dataset"),
    ],
)
def test_out_of_bounds_params_are_rejected_before_any_task_runs(airflow_db, store_root, bad, words):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match=words):
        run_dag("training_pipeline", {"dataset": "digits", "algorithm": "digits-cnn", **FAST, **bad})
    assert not store_root.exists() or not list(LocalStore(store_root).list_keys("models/"))


@pytest.mark.parametrize("executor,operator,pool", [("subprocess", "TrainOperator", "default_pool"),
                                                   ("kubernetes", "TrainerPodOperator", "trainyard-default")])
def test_executor_setting_picks_the_train_operator_at_parse_time(executor, operator, pool):
    code = (
        "from trainyard.local_airflow import configure_airflow_env, load_dag; configure_airflow_env(); "
        "t = load_dag('training_pipeline').get_task('train'); print('TRAIN', type(t).__name__, t.pool)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "TRAINYARD_EXECUTOR": executor})
    assert f"TRAIN {operator} {pool}" in out.stdout


def test_every_dag_file_loads_in_airflows_own_dagbag_without_import_errors():
    from airflow.dag_processing.dagbag import DagBag

    from trainyard.local_airflow import DAGS_FOLDER

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    assert set(bag.dags) == {
        "training_pipeline", "scheduled_retraining", "scheduled_retraining_intents", "dataset_snapshots",
        "hyperparameter_search", "hyperparameter_search_vision", "hyperparameter_search_nlp",
    }
