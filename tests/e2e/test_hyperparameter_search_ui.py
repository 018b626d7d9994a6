"""The hyperparameter_search Params form in the Airflow 3 UI (real headless Chromium), and bad study
requests through the REST API: refused at the trigger, or by the study's first task before any trial."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e import trigger_form
from tests.e2e.airflow_api import AirflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.minio]

DAG_ID = "hyperparameter_search"
LABELS = {
    "dataset": "Dataset",
    "algorithm": "Algorithm",
    "max_trials": "Max trials",
    "parallel_trials": "Parallel trials",
    "sampler": "Sampler",
    "pruner": "Early stopping",
    "epochs": "Epochs per trial",
    "seed": "Study seed",
}
# Not the form's defaults, so a run with these proves the typed values reached Airflow; two trials in
# one wave, so both train side by side; small enough to finish in a few minutes on 2 loaded cores.
FORM_VALUES = {
    "dataset": "intents",
    "algorithm": "intent-classification",
    "max_trials": 2,
    "parallel_trials": 2,
    "sampler": "random",
    "pruner": "none",
    "epochs": 2,
    "seed": 11,
}
SPACE = {"learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
         "batch_size": {"type": "categorical", "choices": [8, 16]}}
RUN_TIMEOUT_S = 1500


@pytest.fixture
def page(browser: Browser, airflow, api: AirflowClient) -> Iterator[Page]:
    api.wait_for_dag(DAG_ID, timeout_s=300)
    with trigger_form.logged_in_page(browser, airflow) as page:
        yield page


def test_a_study_triggered_from_the_form_trains_its_wave_side_by_side_and_registers_the_best(
    page: Page, airflow, api: AirflowClient, artifacts_dir
) -> None:
    dialog = trigger_form.open_trigger_dialog(page, airflow.base_url, DAG_ID)
    for name, value in FORM_VALUES.items():
        trigger_form.fill_param(page, dialog, LABELS[name], value)
    trigger_form.fill_json_param(page, dialog, "Search space", SPACE)
    page.screenshot(path=str(artifacts_dir / "ui-study-form-filled.png"), full_page=True)

    trigger_form.submit(dialog)
    page.wait_for_url(re.compile(r"/runs/"))
    run_id = trigger_form.run_id_from_url(page.url)
    run = api.wait_for_run(DAG_ID, run_id, timeout_s=RUN_TIMEOUT_S)

    assert run["state"] == "success", api.explain_run(DAG_ID, run_id)
    assert {name: run["conf"].get(name) for name in FORM_VALUES} == FORM_VALUES
    assert run["conf"]["search_space"] == SPACE
    trials = [ti for ti in api.task_instances(DAG_ID, run_id) if ti["task_id"] == "train_wave_1"]
    assert len(trials) == 2 and {ti["pool"] for ti in trials} == {"trainyard-default"}
    starts = [datetime.fromisoformat(ti["start_date"]) for ti in trials]
    ends = [datetime.fromisoformat(ti["end_date"]) for ti in trials]
    assert max(starts) < min(ends), "the wave's two trials did not train side by side"
    assert api.task_states(DAG_ID, run_id)["suggest_wave_2"] == "skipped"  # the study had its trials
    best = api.xcom(DAG_ID, run_id, "finish_study", key="plan")
    registered = api.xcom(DAG_ID, run_id, "register")
    assert registered["model_name"] == "intents-intent-classification"
    assert best["study"]["trial_number"] in (0, 1) and best["hyperparameters"]["batch_size"] in (8, 16)
    page.reload()
    # The run page lists some fifty tasks; on a loaded machine it takes longer than expect's default 5 s.
    badge = page.get_by_text("Success", exact=True).filter(visible=True).first
    expect(badge).to_be_visible(timeout=trigger_form.UI_TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "ui-study-run-success.png"), full_page=True)


def test_the_form_refuses_a_categorical_with_no_choices_and_creates_no_run(
    page: Page, airflow, api: AirflowClient, artifacts_dir
) -> None:
    runs_before = len(api.list_runs(DAG_ID))
    dialog = trigger_form.open_trigger_dialog(page, airflow.base_url, DAG_ID)
    trigger_form.fill_json_param(page, dialog, "Search space", {"batch_size": {"type": "categorical", "choices": []}})

    trigger_form.submit(dialog)

    reason = dialog.get_by_text(re.compile("Invalid input for param search_space"))
    expect(reason).to_be_visible()
    reason.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "ui-study-form-invalid.png"), full_page=True)
    assert "/runs/" not in page.url
    assert len(api.list_runs(DAG_ID)) == runs_before


def test_the_rest_api_refuses_an_out_of_bounds_study_without_creating_a_run(api: AirflowClient) -> None:
    api.wait_for_dag(DAG_ID, timeout_s=300)
    runs_before = len(api.list_runs(DAG_ID))

    refused = api.request(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", expect=(400,),
        json={"logical_date": None, "conf": {"dataset": "digits", "algorithm": "digits-cnn", "max_trials": 1000}},
    )

    assert "max_trials" in str(refused)
    assert len(api.list_runs(DAG_ID)) == runs_before


def test_a_search_space_with_low_above_high_fails_the_first_task_and_no_trial_runs(api: AirflowClient) -> None:
    api.wait_for_dag(DAG_ID, timeout_s=300)
    api.unpause(DAG_ID)
    conf = {"dataset": "intents", "algorithm": "intent-classification",
            "search_space": {"learning_rate": {"type": "float", "low": 0.1, "high": 0.01}}}

    run = api.trigger(DAG_ID, conf)
    done = api.wait_for_run(DAG_ID, run["dag_run_id"], timeout_s=600)

    states = api.task_states(DAG_ID, run["dag_run_id"])
    assert done["state"] == "failed" and states["plan_study"] == "failed"
    assert all(state in (None, "upstream_failed") for task, state in states.items() if task.startswith("train_wave_"))
    log = api.task_log(DAG_ID, run["dag_run_id"], "plan_study", 1)
    assert "search space: learning_rate: low 0.1 is greater than high 0.01" in log
