"""Cancelling a run: mark it failed through the REST API, so Airflow kills its running tasks (the
train task's on_kill stops its trainer), then confirm from the store that the trainer stopped."""
from __future__ import annotations

import time

from trainyard.client.records import TERMINAL_RUN_STATES, CancelResult
from trainyard.client.status import RunWatcher, find_run

TRAIN_TASK = "train"
STOPPED_KIND = "stopped"  # steps/lifecycle/run_failure.py: the train step's record of a stopped trainer


def cancel_run(
    watcher: RunWatcher, run_id: str, dag_id: str | None = None, *, confirm_timeout_s: float = 90.0,
    poll_s: float = 2.0,
) -> CancelResult:
    from airflow_client.client.models.dag_run_patch_body import DAGRunPatchBody

    s = watcher.session
    run = find_run(s, run_id, dag_id)
    dag_id, state = run.dag_id, run.state.value
    if state in TERMINAL_RUN_STATES:
        return CancelResult(dag_id=dag_id, run_id=run_id, state_before=state, stopped_tasks=[],
                            note=f"the run had already ended ({state}); nothing to cancel")
    tis = s.call(s.task_instances.get_task_instances, dag_id, run_id, limit=1000).task_instances
    running_tries = {ti.task_id: ti.try_number for ti in tis if ti.state is not None and ti.state.value == "running"}
    running = sorted(running_tries)
    s.call(s.dag_runs.patch_dag_run, dag_id, run_id,
           DAGRunPatchBody(state="failed", note=f"cancelled by {s.username} with `trainyard cancel`"))
    result = CancelResult(dag_id=dag_id, run_id=run_id, state_before=state, stopped_tasks=running)
    if TRAIN_TASK not in running:
        return result
    # Airflow kills a task at its next heartbeat; the train task then records that its trainer stopped.
    deadline = time.monotonic() + confirm_timeout_s
    while True:
        progress, note = watcher.store.progress(dag_id, run_id)
        if progress is None:
            return result.model_copy(update={"note": f"cannot confirm the trainer stopped: {note}"})
        record = progress.failures.get(TRAIN_TASK)
        # The record of this try: an earlier try's stop (a worker shutdown) says nothing about this one.
        if record is not None and record.try_number in (None, running_tries[TRAIN_TASK]):
            if record.kind == STOPPED_KIND:
                return result.model_copy(update={"trainer_stopped": record.reason})
            # On Kubernetes the provider deletes the pod, and the step records the pod's end instead.
            return result.model_copy(update={"note": f"the train step ended: {record.summary}"})
        if time.monotonic() > deadline:
            return result.model_copy(update={
                "note": f"no record that the trainer stopped within {confirm_timeout_s:.0f}s; "
                        f"see `trainyard logs {run_id} --task {TRAIN_TASK}`"
            })
        time.sleep(poll_s)
