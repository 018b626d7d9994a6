"""`trainyard run` and `make demo` as a new user meets them: a failed run ends with one paragraph
(which step, why in its own words, where the full log is) instead of a task-runner traceback; the
demo trains with the registry's defaults, prints what to do next, and a plain `trainyard models`
afterwards shows its model."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, run_cli

pytestmark = pytest.mark.slow


def test_a_failed_run_ends_with_which_step_failed_why_and_where_the_log_is(airflow_db, store_root, tmp_path):
    source = tmp_path / "linked"
    source.mkdir()
    (source / "labels.csv").write_text("id,name\n0,a\n")
    (source / "examples.csv").symlink_to("/etc/passwd")
    catalog = tmp_path / "datasets.yaml"
    catalog.write_text(f"linked:\n  source: {source}\n  schema: digits\n")
    out = run_cli("run", "--dataset", "linked", "--algorithm", "digits-cnn",
                  env={"TRAINYARD_DATASETS_CATALOG": str(catalog)})
    assert out.returncode == 1
    terminal = out.stdout + out.stderr
    assert "Traceback" not in terminal and "task_runner" not in terminal
    paragraph = out.stderr.strip().splitlines()
    assert len(paragraph) == 4, out.stderr
    assert paragraph[0].startswith("training_pipeline run manual__") and "failed after" in paragraph[0]
    assert paragraph[1].startswith("snapshot failed: dataset source ") and "examples.csv is a symbolic link" in paragraph[1]
    assert paragraph[2] == "Not run: validate, train, evaluate, register."
    log = Path(paragraph[3].removeprefix("Full log: "))
    assert "Traceback" in log.read_text() and "SnapshotError" in log.read_text()  # kept, just not on the terminal


def test_make_demo_trains_with_registry_defaults_says_what_next_and_plain_models_sees_it(airflow_db, tmp_path):
    # A user's shell: no TRAINYARD_* set, a home of its own (the test session's Airflow DB is reused).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINYARD_", "MAKE"))}
    env["HOME"] = str(tmp_path)
    demo = subprocess.run(["make", "--no-print-directory", "-s", "demo"], capture_output=True, text=True,
                          env=env, cwd=PROJECT_ROOT, timeout=900)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    terminal = demo.stdout + demo.stderr
    assert not re.search(r"Warning|Traceback", terminal), terminal
    tail = demo.stdout.strip().splitlines()[-3:]
    assert [line.split()[1] for line in tail] == ["models", "lineage", "reproduce"]
    assert "digits-digits-cnn@1" in tail[1] and "digits-digits-cnn@1" in tail[2]

    models = subprocess.run([str(PROJECT_ROOT / ".venv" / "bin" / "trainyard"), "models"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=300)
    assert models.returncode == 0, models.stderr
    assert "digits-digits-cnn  (champion: 1)" in models.stdout and "verified" in models.stdout

    from steps.lifecycle.model_registry import load_manifest
    from steps.store.local import LocalStore

    store = LocalStore(tmp_path / ".local" / "share" / "trainyard" / "store")
    manifest = load_manifest(store, "digits-digits-cnn", 1)
    registry = yaml.safe_load((PROJECT_ROOT / "config" / "algorithms.yaml").read_text())["digits-cnn"]["defaults"]
    assert manifest.hyperparameters == registry  # not the form's old 8 epochs / 0.01 / 32
    trainer_log = store.get_bytes(f"runs/{manifest.run_key}/train/trainer.log").decode()
    assert "Warning" not in trainer_log and "epoch" in trainer_log
