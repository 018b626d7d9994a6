"""A study's trial stops itself when Optuna's pruner says so, with nothing but the store's credentials:
it reports each epoch to the study's journal in the store, exits 0 and says `pruned` and how many
epochs it trained. The real trainer, on the subprocess executor and (containers) in its image."""
from __future__ import annotations

import json

import optuna
import pytest

from steps.lifecycle.train import run_training
from steps.store import StoreSettings, open_store
from steps.store.run_layout import RunLayout
from steps.tuning.study_plan import StudyPlan, start_study
from steps.tuning.study_state import open_study
from tests.pipeline_fixtures import snapshot_of
from tests.tuning_fixtures import make_study_plan

EPOCHS = 3
# Two earlier trials that scored perfectly at every epoch: under the median rule, any real
# trial is worse than them after its first epoch and is stopped there.
PERFECT = {step: 1.0 for step in range(1, EPOCHS + 1)}
HOPELESS = {"learning_rate": 0.001, "batch_size": 32, "embedding_dim": 8, "hidden": 8}


def study_with_two_perfect_trials(settings: StoreSettings, **request) -> tuple[StudyPlan, str]:
    store = open_store(settings)
    plan = start_study(store, make_study_plan(
        epochs=EPOCHS, max_trials=3, parallel_trials=1, pruner="median", min_trials=2, start_epoch=1, **request
    ))
    study = open_study(store, plan.layout, plan.pruner)
    distributions = plan.space.distributions()
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(
            value=1.0, params=HOPELESS, distributions=distributions, intermediate_values=PERFECT
        ))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, params=HOPELESS, distributions=distributions
    ))
    return plan, snapshot_of(store, "intents").dataset_hash


def assert_stopped_after_first_epoch(settings: StoreSettings, plan: StudyPlan, result) -> None:
    store = open_store(settings)
    run = RunLayout(plan.layout.trial_run_key(2))
    epochs = [json.loads(line) for line in store.get_bytes(run.train.metrics).decode().splitlines()]
    assert result.status == "pruned"
    assert result.epochs_completed == 1 and len(epochs) == 1
    assert result.stopped is not None and result.stopped.after_epoch == 1 and "median rule" in result.stopped.reason
    # The pruner is the loop's last epoch-end hook: the epoch it stopped after was checkpointed first.
    assert store.exists(run.train.checkpoint_marker(1))
    reported = open_study(store, plan.layout, plan.pruner).trials[2].intermediate_values
    assert reported == {1: epochs[0]["test_macro_f1"]}  # what the trainer told its study
    log = store.get_bytes(run.train.trainer_log).decode()
    assert "pruned after epoch 1: median rule" in log and "trainyard-trainer: train done" in log


def test_a_trial_worse_than_the_median_stops_after_its_first_epoch_on_the_subprocess_executor(tmp_path):
    from steps.executors.subprocess_executor import SubprocessExecutor

    settings = StoreSettings(backend="local", root=str(tmp_path / "store"))
    plan, dataset_hash = study_with_two_perfect_trials(settings)

    result = run_training(plan.trial_plan(2, HOPELESS), dataset_hash, SubprocessExecutor(), settings)

    assert_stopped_after_first_epoch(settings, plan, result)


@pytest.mark.slow
@pytest.mark.timeout(300)  # a rank left waiting at an all-reduce would hang until the trainer deadline
def test_a_two_process_trial_stops_on_every_rank_when_rank_zero_is_told_to_prune(tmp_path):
    """Rank 0 alone asks the study; were the other rank not told, it would wait at the next all-reduce."""
    from steps.executors.subprocess_executor import SubprocessExecutor

    settings = StoreSettings(backend="local", root=str(tmp_path / "store"))
    plan, dataset_hash = study_with_two_perfect_trials(settings, run_id="study-ddp")
    trial = plan.trial_plan(2, HOPELESS).model_copy(update={"procs_per_node": 2})

    result = run_training(trial, dataset_hash, SubprocessExecutor(), settings)

    assert (result.world_size, result.backend) == (2, "gloo")
    assert_stopped_after_first_epoch(settings, plan, result)


def test_without_enough_completed_trials_the_median_rule_lets_a_trial_train_every_epoch(tmp_path):
    from steps.executors.subprocess_executor import SubprocessExecutor

    settings = StoreSettings(backend="local", root=str(tmp_path / "store"))
    plan, dataset_hash = study_with_two_perfect_trials(settings, run_id="study-3", seed=3)
    plan = plan.model_copy(update={"pruner": plan.pruner.model_copy(update={"min_trials": 3})})

    result = run_training(plan.trial_plan(2, HOPELESS), dataset_hash, SubprocessExecutor(), settings)

    assert result.status == "completed" and result.epochs_completed == EPOCHS


def test_a_trial_pod_carries_its_study_link_in_plain_env_and_store_credentials_only_as_secret_refs():
    from steps.catalog.teams import load_teams
    from steps.images.trainer_image import TrainerImage
    from steps.kubernetes.pod_spec import placement_for, render_trainer_pod
    from steps.lifecycle.train import training_job
    from steps.training.contract import PruningSpec
    from tests.pipeline_fixtures import catalog

    secret = "s3cr3t-never-in-a-trial-pod"
    store = StoreSettings(backend="minio", minio_endpoint="minio:9000", minio_access_key="ak", minio_secret_key=secret)
    plan = make_study_plan(pruner="hyperband", epochs=EPOCHS)
    image = TrainerImage(algorithm="intent-classification", image_reference="r/intent:1", image_digest="sha256:" + "ab" * 32)
    trial = plan.trial_plan(4, HOPELESS).model_copy(update={"image": image, "executor": "kubernetes"})
    placement = placement_for(catalog().algorithm(trial.algorithm), load_teams().team("default"))

    pod = render_trainer_pod(training_job(trial, "d" * 64), image, store, placement)

    env = {e.name: e for e in pod.spec.containers[0].env}
    spec = PruningSpec.model_validate_json(env["TRAINYARD_PRUNING"].value)
    assert (spec.study_id, spec.trial_number, spec.pruner.kind, spec.pruner.max_epochs) == (plan.study_id, 4, "hyperband", EPOCHS)
    assert json.loads(env["TRAINYARD_HYPERPARAMETERS"].value)["embedding_dim"] == HOPELESS["embedding_dim"]
    assert env["TRAINYARD_MINIO_SECRET_KEY"].value is None and env["TRAINYARD_MINIO_SECRET_KEY"].value_from.secret_key_ref
    assert secret not in json.dumps(pod.to_dict(), default=str)


@pytest.mark.containers
@pytest.mark.minio
@pytest.mark.registry
@pytest.mark.timeout(3600)
def test_a_trial_in_its_trainer_image_stops_itself_reporting_through_minio(registered_images):
    from steps.executors.container_executor import ContainerExecutor
    from steps.images.trainer_image import TrainerImage
    from tests.minio_server import unique_bucket_prefix

    minio_settings, _, pinned = registered_images
    settings = StoreSettings(**{**minio_settings.__dict__, "bucket_prefix": unique_bucket_prefix()})
    plan, dataset_hash = study_with_two_perfect_trials(settings)
    repository, digest = pinned["intent-classification"].split("@")
    image = TrainerImage(algorithm="intent-classification", image_reference=repository, image_digest=digest)
    trial = plan.trial_plan(2, HOPELESS).model_copy(update={"image": image, "executor": "container"})

    result = run_training(trial, dataset_hash, ContainerExecutor(), settings)

    assert_stopped_after_first_epoch(settings, plan, result)
