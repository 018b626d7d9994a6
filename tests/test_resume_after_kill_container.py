"""The kill -9 proof on the container executor: the trainer image (built by scripts/build-images.sh,
pulled by digest from a real registry) killed from the host in the middle of epoch 3 of 6; Airflow
retries the train task in a new container, which resumes from the checkpoint of epoch 2 in MinIO, and
the weights are bit-identical to an uninterrupted container run's. A diverged trainer's exit code
reaches the executor through podman."""
from __future__ import annotations

import pytest

from steps.executors.base import TrainerFailed
from steps.executors.container_executor import ContainerExecutor
from steps.images.trainer_image import TrainerImage
from steps.store import open_store
from tests.test_container_executor import COLD_BUILD_TIMEOUT_S
from tests.test_resume_after_kill import CONF, _train_tries
from tests.trainer_kill import kill_mid_epoch

pytestmark = [
    pytest.mark.containers, pytest.mark.minio, pytest.mark.registry, pytest.mark.slow,
    pytest.mark.timeout(COLD_BUILD_TIMEOUT_S),
]


def test_a_trainer_container_killed_mid_epoch_3_resumes_on_the_retry_to_bit_identical_weights(
    registered_images, airflow_db, monkeypatch
):
    from steps.lifecycle.model_registry import resolve_model_ref
    from steps.lifecycle.reproduce import reproduce_model
    from trainyard.local_airflow import run_dag

    settings, env, pinned = registered_images
    for name, value in {**env, "TRAINYARD_EXECUTOR": "container", "TRAINYARD_RETRY_DELAY_S": "0"}.items():
        monkeypatch.setenv(name, value)
    store = open_store(settings)

    kill = kill_mid_epoch(store, {"TRAINYARD_MINIO_BUCKET_PREFIX": settings.bucket_prefix}, epoch=3)
    run = run_dag("training_pipeline", CONF)
    kill.done.wait(timeout=60)

    assert kill.error is None, kill.error
    assert kill.previous_checkpoint_existed and not kill.own_checkpoint_existed  # killed inside epoch 3
    assert run.state == "success", run
    assert _train_tries(run) == 2
    manifest = resolve_model_ref(store, "digits-digits-cnn")
    assert manifest.trainer.pinned_reference == pinned["digits-cnn"] and manifest.executor == "container"
    assert manifest.resumed is not None and manifest.resumed.from_epoch == 3

    report, uninterrupted = reproduce_model(manifest, ContainerExecutor(), settings, deadline_s=1800)
    assert uninterrupted.resumed is None and uninterrupted.epochs_completed == 6
    assert report.weights_match, report.summary()


def test_a_diverging_trainer_container_fails_as_diverged(registered_images):
    from steps.lifecycle.train import training_job
    from tests.pipeline_fixtures import make_plan, snapshot_of

    settings, _, pinned = registered_images
    store = open_store(settings)
    snapshot = snapshot_of(store, "intents")
    plan = make_plan("diverges", dataset="intents", algorithm="intent-classification", epochs=6)
    plan = plan.model_copy(update={"hyperparameters": {**plan.hyperparameters, "optimizer": "sgd", "learning_rate": 10.0,
                                                       "batch_size": 8}})
    repository, digest = pinned["intent-classification"].split("@")
    image = TrainerImage(algorithm="intent-classification", image_reference=repository, image_digest=digest)

    with pytest.raises(TrainerFailed) as failed:
        ContainerExecutor().run(training_job(plan, snapshot.dataset_hash), image, settings, deadline_s=900)

    assert failed.value.failure_kind == "diverged"
    assert str(failed.value).startswith("trainer 'intent-classification' diverged: training loss is ")
    assert not store.exists(plan.layout.train.result)
