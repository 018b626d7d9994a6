"""Skip the train task, and with it evaluate and register, when a registered version already holds
this training's result (steps/lifecycle/train.py reuse_earlier_training). Shared by the local train
task and the Kubernetes TrainerPodOperator, which must decide before it creates a pod."""
from __future__ import annotations

from typing import Any

#: The XCom (on the train task) that names the reused version, for REST clients: register is skipped.
REUSED_XCOM_KEY = "reused_version"


def skip_if_already_trained(plan: Any, snapshot: Any, context: Any) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    from operators.context import load_settings, open_artifact_store
    from steps.data.snapshot import SnapshotRef
    from steps.lifecycle.plan import RunPlan
    from steps.lifecycle.train import reuse_earlier_training, reuse_message

    run = RunPlan.model_validate(plan)
    dataset_hash = SnapshotRef.model_validate(snapshot).dataset_hash
    reused = reuse_earlier_training(open_artifact_store(load_settings()), run, dataset_hash)
    if reused is None:
        return
    message = reuse_message(reused)
    print(message)
    context["ti"].xcom_push(key=REUSED_XCOM_KEY, value=reused.model_dump(mode="json"))
    # Skipped, not failed: evaluate and register follow the train task's state and are skipped too.
    raise AirflowSkipException(message)


def warm_up_trainer_if_it_will_run(plan: Any, snapshot: Any) -> None:
    """Under the embedded runner (and only there: steps/warm/interpreter.py), start the trainer
    interpreter of a run that will train now, if the runner's forecast did not, so its imports
    overlap validation."""
    from steps.warm import interpreter

    if not interpreter.enabled():
        return
    from operators.context import load_settings, open_artifact_store
    from steps.data.snapshot import SnapshotRef
    from steps.executors.subprocess_executor import prewarm_trainer
    from steps.lifecycle.plan import RunPlan
    from steps.lifecycle.training_reuse import reusable_version

    run = RunPlan.model_validate(plan)
    if run.executor != "subprocess":
        return
    dataset_hash = SnapshotRef.model_validate(snapshot).dataset_hash
    if reusable_version(open_artifact_store(load_settings()), run, dataset_hash) is None:
        prewarm_trainer()
