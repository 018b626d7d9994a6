"""Drive Airflow 3's "Trigger Dag" dialog with Playwright, the way a person does.

The dialog's <label for=...> ids do not match its inputs' ids (seen in Airflow 3.3.2),
so fields are found by their visible label text and the field container around it,
not with get_by_label.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

CHROMIUM_PATH = Path("/usr/bin/chromium")
# No browser download is possible here: Debian's chromium, headless, and quiet about
# the network (no update/sync/QUIC traffic off the loopback interface).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every wait in the UI tests, Playwright's expect() included (its own default is 5 s): on a
# loaded 2-core machine the SPA's first paint and its translations can take tens of seconds.
UI_TIMEOUT_MS = 120_000
expect.set_options(timeout=UI_TIMEOUT_MS)
# The UI renders i18n keys (nav.home, nav.dags) until its translations have loaded.
_UNTRANSLATED_NAV = r"\bnav\.(home|dags|assets|browse|admin|docs)\b"


def wait_until_ready(page: Page) -> None:
    """Loaded, rendered, and translated: the page a person would read, not its skeleton."""
    page.wait_for_load_state("load", timeout=UI_TIMEOUT_MS)
    page.wait_for_function(
        "pattern => document.body && document.body.innerText.trim().length > 0"
        " && !new RegExp(pattern).test(document.body.innerText)",
        arg=_UNTRANSLATED_NAV,
        timeout=UI_TIMEOUT_MS,
    )


def reload(page: Page) -> None:
    page.reload(timeout=UI_TIMEOUT_MS)
    wait_until_ready(page)


@contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM_PATH.exists():
        raise RuntimeError(f"{CHROMIUM_PATH} missing: apt-get install chromium (scripts/airflow_stack.py install-deps)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Page, base_url: str, username: str, password: str, next_path: str = "/") -> None:
    page.goto(f"{base_url}{next_path}", timeout=UI_TIMEOUT_MS)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"), timeout=UI_TIMEOUT_MS)
    wait_until_ready(page)


@contextmanager
def logged_in_page(browser: Browser, airflow) -> Iterator[Page]:
    """A fresh browser context, logged in to the stack's UI as its admin."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        log_in(page, airflow.base_url, airflow.admin_user, airflow.admin_password)
        yield page
    finally:
        context.close()


def open_trigger_dialog(page: Page, base_url: str, dag_id: str) -> Locator:
    page.goto(f"{base_url}/dags/{dag_id}", timeout=UI_TIMEOUT_MS)
    wait_until_ready(page)
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for(timeout=UI_TIMEOUT_MS)
    return dialog


def param_field(dialog: Locator, label: str) -> Locator:
    """The form row of the Param whose visible label (its title, else its name) is `label`."""
    label_el = dialog.locator("label[data-part=label]").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$"))
    return label_el.locator("xpath=ancestor::*[@data-scope='field' and @data-part='root'][1]")


def fill_param(page: Page, dialog: Locator, label: str, value: object) -> None:
    """Set one Param as a user would: pick enum options, type numbers and text."""
    field = param_field(dialog, label)
    field.wait_for(timeout=UI_TIMEOUT_MS)
    if field.get_by_role("combobox").count():
        field.get_by_role("combobox").click()
        page.get_by_role("option", name=str(value), exact=True).click()
    elif field.get_by_role("spinbutton").count():
        box = field.get_by_role("spinbutton")
        box.fill(str(value))
        box.blur()  # the form normalises (and clamps) numbers on blur
    else:
        box = field.get_by_role("textbox")
        box.fill(str(value))
        box.blur()


def fill_json_param(page: Page, dialog: Locator, label: str, value: object) -> None:
    """Replace an object Param's JSON in its code editor, as a user pasting it would (typing key by key
    would fight the editor's auto-closed brackets and quotes)."""
    import json

    field = param_field(dialog, label)
    field.wait_for(timeout=UI_TIMEOUT_MS)
    editor = field.locator(".monaco-editor")
    editor.wait_for(timeout=UI_TIMEOUT_MS)
    editor.click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(json.dumps(value))
    param_field(dialog, "Model name").click()  # leave the editor so the form takes the value


def param_value(dialog: Locator, label: str) -> str:
    field = param_field(dialog, label)
    for role in ("spinbutton", "textbox"):
        if field.get_by_role(role).count():
            return field.get_by_role(role).input_value()
    return field.inner_text()


def submit(dialog: Locator) -> None:
    dialog.get_by_test_id("trigger-dag-submit").click()


def run_id_from_url(url: str) -> str:
    """The UI lands on /dags/<dag_id>/runs/<run_id> after a successful trigger."""
    match = re.search(r"/runs/([^/?#]+)", url)
    if not match:
        raise AssertionError(f"not a run page: {url}")
    return unquote(match.group(1))
