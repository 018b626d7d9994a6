"""The training Params form in the Airflow 3 UI, in a real headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from steps.lifecycle.plan import BOUNDS
from tests.e2e import trigger_form
from tests.e2e.airflow_api import AirflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.minio]

DAG_ID = "training_pipeline"
# param name -> the label the form shows (the Param's title)
LABELS = {
    "dataset": "Dataset",
    "algorithm": "Algorithm",
    "epochs": "Epochs",
    "learning_rate": "Learning rate",
    "batch_size": "Batch size",
    "seed": "Seed",
}
# Not the form's defaults, so a run with these proves the typed values reached Airflow;
# small enough that the real training finishes in about a minute on 2 cores.
FORM_VALUES = {
    "dataset": "intents",
    "algorithm": "intent-classification",
    "epochs": 2,
    "learning_rate": 0.05,
    "batch_size": 8,
    "seed": 11,
}
RUN_TIMEOUT_S = 1200


@pytest.fixture
def page(browser: Browser, airflow, api: AirflowClient) -> Iterator[Page]:
    api.wait_for_dag(DAG_ID)
    with trigger_form.logged_in_page(browser, airflow) as page:
        yield page


def test_filled_params_form_triggers_a_run_that_succeeds_with_those_params(
    page: Page, airflow, api: AirflowClient, artifacts_dir
) -> None:
    dialog = trigger_form.open_trigger_dialog(page, airflow.base_url, DAG_ID)
    for name, value in FORM_VALUES.items():
        trigger_form.fill_param(page, dialog, LABELS[name], value)
    page.screenshot(path=str(artifacts_dir / "ui-trigger-form-filled.png"), full_page=True)
    expect(
        dialog.get_by_test_id("trigger-dag-submit"),
        "Trigger stays disabled: the form treats some Param as required and empty",
    ).to_be_enabled()

    trigger_form.submit(dialog)
    page.wait_for_url(re.compile(r"/runs/"), timeout=trigger_form.UI_TIMEOUT_MS)
    run_id = trigger_form.run_id_from_url(page.url)
    run = api.wait_for_run(DAG_ID, run_id, timeout_s=RUN_TIMEOUT_S)

    assert run["state"] == "success", api.explain_run(DAG_ID, run_id)
    assert {name: run["conf"].get(name) for name in FORM_VALUES} == FORM_VALUES
    registered = api.xcom(DAG_ID, run_id, "register")
    assert registered["model_name"] == "intents-intent-classification"
    assert len(registered["weights_sha256"]) == 64
    trigger_form.reload(page)  # waits for the translated page, not just the navigation
    # The run header shows the state badge; hidden copies (legends, tooltips) do not count.
    expect(page.get_by_text("Success", exact=True).filter(visible=True).first).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "ui-trigger-run-success.png"), full_page=True)


def test_learning_rate_at_its_exclusive_minimum_is_refused_with_the_reason_and_no_run(
    page: Page, airflow, api: AirflowClient, artifacts_dir
) -> None:
    runs_before = len(api.list_runs(DAG_ID))
    dialog = trigger_form.open_trigger_dialog(page, airflow.base_url, DAG_ID)
    trigger_form.fill_param(page, dialog, LABELS["learning_rate"], 0)

    trigger_form.submit(dialog)

    reason = dialog.get_by_text("Invalid input for param learning_rate")
    expect(reason).to_be_visible()
    expect(dialog.get_by_text(re.compile("less than or equal to the minimum of 0"))).to_be_visible()
    reason.scroll_into_view_if_needed()  # the dialog scrolls on its own; show the reason in the screenshot
    page.screenshot(path=str(artifacts_dir / "ui-trigger-form-invalid.png"), full_page=True)
    assert "/runs/" not in page.url
    assert len(api.list_runs(DAG_ID)) == runs_before


def test_epochs_above_the_params_maximum_is_clamped_to_it_by_the_form(page: Page, airflow) -> None:
    dialog = trigger_form.open_trigger_dialog(page, airflow.base_url, DAG_ID)

    trigger_form.fill_param(page, dialog, LABELS["epochs"], BOUNDS["epochs"]["maximum"] + 1000)

    assert trigger_form.param_value(dialog, LABELS["epochs"]) == str(BOUNDS["epochs"]["maximum"])
