"""A study that cannot run is refused before any trial, in one line that names the problem: the same
checks serve the CLI (here, before Airflow starts) and the study DAG's first task (tests/e2e/test_hyperparameter_search_ui.py)."""
from __future__ import annotations

import json
import re

import pytest

from steps.lifecycle.plan import BadRequest
from steps.tuning.request import DEFAULT_START_EPOCH, parse_study_request
from steps.tuning.study_plan import check_study_request
from tests.conftest import run_cli
from tests.pipeline_fixtures import catalog

DIGITS = {"dataset": "digits", "algorithm": "digits-cnn"}
LR = {"type": "float", "low": 0.001, "high": 0.1, "log": True}

REFUSED = [
    ({"search_space": {}}, "search space is empty"),
    ({"search_space": {"learning_rate": {**LR, "low": 0.1, "high": 0.01}}}, "learning_rate: low 0.1 is greater than high 0.01"),
    ({"search_space": {"learning_rate": {**LR, "low": 0.0}}}, "learning_rate: a log scale needs low > 0, got low 0.0"),
    ({"search_space": {"dropout": {"type": "float", "low": 0.1, "high": 0.5}}}, "digits-cnn has no hyperparameter 'dropout'"),
    ({"search_space": {"batch_size": {"type": "categorical", "choices": []}}}, "batch_size: a categorical parameter needs at least one choice"),
    ({"search_space": {"epochs": {"type": "int", "low": 1, "high": 9}}}, "epochs is every trial's budget"),
    ({"search_space": {"channels": {"type": "float", "low": 4, "high": 32}}}, "channels: takes whole numbers"),
    ({"search_space": {"learning_rate": {**LR, "high": 20.0}}}, "learning_rate: 20.0 is outside what a run accepts (> 0 and <= 10)"),
    ({"search_space": {"learning_rate": {"type": "uniform", "low": 0.1, "high": 1}}}, "learning_rate: type 'uniform' is unknown"),
    ({"max_trials": 0}, "max_trials: Input should be greater than or equal to 1 (got 0)"),
    ({"max_trials": 65}, "max_trials: Input should be less than or equal to 64 (got 65)"),
    ({"parallel_trials": 0}, "parallel_trials: Input should be greater than or equal to 1 (got 0)"),
    ({"parallel_trials": 9}, "parallel_trials: Input should be less than or equal to 8 (got 9)"),
    ({"max_trials": 40, "parallel_trials": 2}, "needs 20 waves, and the study DAG runs at most 16"),
    ({"sampler": "bayes"}, "sampler: Input should be 'random', 'grid', 'tpe', 'cmaes' or 'qmc' (got 'bayes')"),
    ({"objective": "f1"}, "objective: Input should be 'macro_f1' or 'accuracy' (got 'f1')"),
    ({"pruner": "asha"}, "pruner: Input should be"),
    ({"epochs": 3, "start_epoch": 3}, "start_epoch 3 leaves nothing to stop: trials train 3 epochs"),
    ({"epochs": 1}, "start_epoch 1 leaves nothing to stop: trials train 1 epochs; use pruner none or more epochs"),
    ({"algorithm": "intent-classification"}, "trains on 'intent' data, but dataset 'digits' has schema 'digits'"),
]


@pytest.mark.parametrize(("change", "message"), REFUSED, ids=[re.sub(r"\W+", "-", m)[:48].strip("-") for _, m in REFUSED])
def test_a_bad_study_request_is_refused_naming_the_problem(change, message):
    with pytest.raises(BadRequest) as refused:
        check_study_request(parse_study_request({**DIGITS, **change}), catalog())
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("algorithm", sorted(catalog().algorithms))
def test_every_algorithm_declares_a_default_space_that_parses(algorithm):
    entry = catalog().algorithm(algorithm)
    dataset = next(d for d in catalog().datasets.values() if d.schema_name == entry.schema_name)
    request, space = check_study_request(parse_study_request({"dataset": dataset.name, "algorithm": algorithm}), catalog())
    assert space.params and set(space.params) <= set(entry.defaults)
    assert request.epochs == entry.defaults["epochs"] and request.search_space == space.to_raw()


def test_a_study_stops_trials_from_its_algorithms_start_epoch_unless_it_names_its_own():
    def start_epoch(values: dict) -> int | None:
        return check_study_request(parse_study_request(values), catalog())[0].start_epoch

    assert catalog().algorithm("digits-cnn").early_stopping.start_epoch == 1
    assert catalog().algorithm("intent-classification").early_stopping.start_epoch is None
    assert start_epoch(DIGITS) == 1
    assert start_epoch({"dataset": "intents", "algorithm": "intent-classification"}) == DEFAULT_START_EPOCH
    assert start_epoch({**DIGITS, "start_epoch": 3}) == 3


def test_the_cli_refuses_a_bad_space_file_in_one_line_before_starting_airflow(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: float, low: 0.1, high: 0.01}\n")

    done = run_cli("tune", "--dataset", "digits", "--algorithm", "digits-cnn", "--space", str(space), timeout=120)

    assert done.returncode == 2
    assert done.stderr.strip() == "trainyard: error: search space: learning_rate: low 0.1 is greater than high 0.01"
    assert "Traceback" not in done.stdout + done.stderr and "airflow" not in done.stdout.lower()


@pytest.mark.parametrize("dag_id", ["hyperparameter_search", "hyperparameter_search_vision"])
def test_trainyard_submit_refuses_a_bad_study_in_one_line_before_any_network(dag_id, monkeypatch, capsys):
    from trainyard.cli import main
    from trainyard.client.errors import EXIT_BAD_REQUEST

    monkeypatch.setenv("TRAINYARD_AIRFLOW_USERNAME", "someone")
    monkeypatch.setenv("TRAINYARD_AIRFLOW_PASSWORD", "not-a-real-password")
    space = json.dumps({"learning_rate": {**LR, "low": 0.1, "high": 0.01}})

    # The URL points nowhere: the refusal must come from the local check, before any request.
    code = main(["submit", "--dag", dag_id, "--dataset", "digits", "--algorithm", "digits-cnn",
                 "--param", f"search_space={space}", "--airflow", "http://127.0.0.1:9"])

    assert code == EXIT_BAD_REQUEST
    assert capsys.readouterr().err.strip() == (
        "trainyard: error: search space: learning_rate: low 0.1 is greater than high 0.01"
    )


def test_trainyard_submit_lets_a_good_study_through_to_airflow(monkeypatch, capsys):
    from trainyard.cli import main
    from trainyard.client.errors import EXIT_AIRFLOW_DOWN

    monkeypatch.setenv("TRAINYARD_AIRFLOW_USERNAME", "someone")
    monkeypatch.setenv("TRAINYARD_AIRFLOW_PASSWORD", "not-a-real-password")

    code = main(["submit", "--dag", "hyperparameter_search_vision", "--dataset", "digits", "--algorithm", "digits-cnn",
                 "--param", "max_trials=4", "--param", f"search_space={json.dumps({'learning_rate': LR})}",
                 "--airflow", "http://127.0.0.1:9"])

    assert code == EXIT_AIRFLOW_DOWN, capsys.readouterr().err  # refused by nobody here: it tried to reach Airflow


def test_the_cli_names_a_space_file_that_is_not_yaml(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: float, low: [\n")

    done = run_cli("tune", "--dataset", "digits", "--algorithm", "digits-cnn", "--space", str(space), timeout=120)

    assert done.returncode == 2
    assert f"search space file {space} is not valid YAML" in done.stderr


def test_a_cleared_study_resumes_its_stored_plan_and_refuses_other_parameters(tmp_path):
    from steps.store.local import LocalStore
    from steps.tuning.study_plan import resumed_plan, start_study
    from tests.tuning_fixtures import make_study_plan

    store = LocalStore(tmp_path / "store")
    started = start_study(store, make_study_plan(seed=1))
    asked = {"dataset": "intents", "algorithm": "intent-classification", "epochs": 3, "seed": 1}

    assert resumed_plan(store, started.study_id, parse_study_request(asked), catalog()) == started
    with pytest.raises(BadRequest, match="was started with other parameters"):
        resumed_plan(store, started.study_id, parse_study_request({**asked, "seed": 2}), catalog())
    assert resumed_plan(store, "tests-another-study", parse_study_request(asked), catalog()) is None
