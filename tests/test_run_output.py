"""What the terminal keeps of a run's full log, and the paragraph a failed run ends with; the
plain functions behind tests/test_run_answers.py's end-to-end run, without starting Airflow."""
from __future__ import annotations

from pathlib import Path

from steps.lifecycle.run_failure import RunFailure
from trainyard.cli.run_output import TerminalFilter, failure_paragraph
from trainyard.local_airflow import LocalRun

TASK_RUNNER_LOG = """\
2026-11-29T08:07:47.158412Z [info     ] [DAG TEST] starting task_id=snapshot map_index=-1
files 4  size_bytes 278104
2026-11-29T08:07:48.000001Z [error    ] Task failed with exception
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/airflow/sdk/execution_time/task_runner.py", line 900, in run
    result = _execute_task(context=context, ti=ti, log=log)
steps.data.snapshot.SnapshotError: dataset source /data: examples.csv is a symbolic link
2026-11-29T08:07:48.100000Z [info     ] [DAG TEST] starting task_id=validate map_index=-1
"""


def test_the_terminal_sees_steps_and_their_lines_never_the_task_runner_traceback():
    keep = TerminalFilter()
    shown = [s for s in (keep.shown(line) for line in TASK_RUNNER_LOG.splitlines()) if s is not None]
    assert shown == ["[snapshot]", "  files 4  size_bytes 278104", "[validate]"]


def test_a_failed_run_paragraph_names_the_step_its_reason_what_did_not_run_and_the_log():
    run = LocalRun(dag_id="training_pipeline", run_id="manual__1", state="failed", wall_time_s=12.34,
                   failed_tasks=["snapshot"], upstream_failed_tasks=["register", "validate", "train", "evaluate"])
    reason = "dataset source /data: examples.csv is a symbolic link; refusing to follow it"
    failures = {"snapshot": RunFailure(run_key="k", step="snapshot", kind="validation", reason=reason,
                                       retryable=False, recorded_at="2026-11-29T08:07:48Z")}
    assert failure_paragraph(run, failures, Path("/home/u/logs/run.log")).splitlines() == [
        "training_pipeline run manual__1 failed after 12.3s.",
        f"snapshot failed: {reason}",
        "Not run: validate, train, evaluate, register.",
        "Full log: /home/u/logs/run.log",
    ]
