"""`trainyard tensorboard` refuses, in one line, what names no run. (Serving real runs:
tests/test_resume_after_kill.py.)"""
from __future__ import annotations

from tests.conftest import run_cli


def test_tensorboard_names_what_it_cannot_find_without_a_traceback(store_root):
    nothing = run_cli("tensorboard")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == (
        "trainyard: error: name at least one MODEL@VERSION, MODEL, RUN_KEY or RUN_ID, or pass --all-runs"
    )
    unknown = run_cli("tensorboard", "digits-digits-cnn@3", "no-such-run")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert unknown.stderr.startswith("trainyard: error: no such model 'digits-digits-cnn'; registered models: none")
