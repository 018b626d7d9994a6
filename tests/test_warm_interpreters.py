"""Warm interpreters (steps/warm/) run a job exactly as a new process would, report the same
validation, die at a trainer's deadline, and never outlive the run that started them."""
from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import pytest

from steps.data.validate import validate_dataset_dir
from steps.data.validation_process import prewarm_validator, warm_validator
from steps.executors.trainer_process import run_trainer_process
from steps.project_root import PROJECT_ROOT
from steps.warm import interpreter
from tests.conftest import write_digits_dataset

PROBE = textwrap.dedent(
    """
    import json, os, sys
    print(json.dumps({"env": dict(os.environ), "argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0],
                      "hash": hash("trainyard"), "tmp": __import__("tempfile").gettempdir()}))
    """
)


@pytest.fixture
def runner():
    """What `trainyard run` does around a run: allow warm interpreters, end the unused ones after."""
    interpreter.enable()
    yield
    interpreter.discard_all()


def job_env(tmp_path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_ROOT), "PYTHONHASHSEED": "0",
            "TMPDIR": str(tmp_path), "HOME": str(tmp_path), "ONLY_THIS_JOB": "1"}


def test_a_warm_interpreter_runs_a_job_exactly_as_a_new_process_would(runner, tmp_path):
    import subprocess

    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    # Without PYTHONPATH, which the interpreter was started with: the job's environment replaces its own.
    env = {name: value for name, value in job_env(tmp_path).items() if name != "PYTHONPATH"}
    cold = subprocess.run([sys.executable, str(script), "a", "b"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    assert interpreter.prewarm("probe", sys.executable, PROJECT_ROOT, ["json", "tempfile"])
    warm = interpreter.take("probe", sys.executable, PROJECT_ROOT)
    process = warm.start(script, env, str(tmp_path), ["a", "b"])
    output = process.stdout.read()
    assert process.wait() == 0, output

    assert json.loads(output.splitlines()[-1]) == json.loads(cold.stdout)


def test_a_warm_validator_reports_what_validating_in_this_process_reports(runner, tmp_path):
    source = write_digits_dataset(tmp_path / "toy", rows=150)
    lines = (source / "examples.csv").read_text().splitlines()
    fields = lines[3].split(",")
    lines[3] = ",".join([fields[0], "42", *fields[2:]])  # a label outside labels.csv: a failure in detail
    (source / "examples.csv").write_text("\n".join(lines) + "\n")
    assert prewarm_validator()

    warm = warm_validator()(source, "digits", "toy")
    here = validate_dataset_dir(source, "digits", dataset="toy")

    assert not warm.success and warm.failures and any("42" in line for line in warm.failures)
    # Everything but the timings and GX's run ids and timestamps (each validation gets its own).
    assert warm.model_dump(exclude={"duration_s", "gx_results"}) == here.model_dump(exclude={"duration_s", "gx_results"})
    for batch in ("structure", "values"):
        assert warm.gx_results[batch]["results"] == here.gx_results[batch]["results"]
    assert warm_validator() is None  # one job per interpreter


def test_a_warm_trainer_past_its_deadline_is_killed_with_everything_it_started(runner, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import subprocess, sys, time\n"
                      "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
                      "print('started', flush=True)\ntime.sleep(600)\n")
    interpreter.prewarm("probe", sys.executable, PROJECT_ROOT, ["json"])
    warm = interpreter.take("probe", sys.executable, PROJECT_ROOT)
    started = time.monotonic()

    outcome = run_trainer_process([], env={}, deadline_s=2, secrets={},
                                  started=warm.start(script, job_env(tmp_path), str(tmp_path)))

    assert outcome.timed_out and outcome.log_lines == ["started"]
    assert time.monotonic() - started < 60  # the grandchild held the pipe: it died with the group


def test_interpreters_start_only_inside_a_run_and_unused_ones_end_with_it(tmp_path):
    assert not interpreter.prewarm("probe", sys.executable, PROJECT_ROOT, ["json"])  # no run allows it
    assert interpreter.take("probe", sys.executable, PROJECT_ROOT) is None

    interpreter.enable()
    assert interpreter.prewarm("probe", sys.executable, PROJECT_ROOT, ["json"])
    waiting = interpreter.take("probe", sys.executable, PROJECT_ROOT)
    interpreter._waiting.append(waiting)  # put it back, unused
    assert interpreter.discard_all() == 1

    assert waiting.process.poll() is not None and not interpreter.enabled()
