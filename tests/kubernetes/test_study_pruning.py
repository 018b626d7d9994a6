"""A study's trial stops itself in its trainer pod on the real cluster: the pod reads the study link
from its env and the store's keys from the team's Secret, reports each epoch to the study's Optuna
journal in the tier's MinIO, is told to stop by the median rule, and exits 0; the wave's record then
says the trial was pruned after that epoch.

The wave is proposed and recorded by the study's own steps (steps/tuning/waves.py, what the
hyperparameter_search DAG's suggest_wave/record_wave tasks call); the trial runs in the pod the
Kubernetes executor renders for every trainer run (steps/kubernetes/pod_spec.py). As in
tests/test_tuning_pruning.py, two perfect trials already in the journal make the outcome certain.
"""
from __future__ import annotations

import json
from dataclasses import replace

import optuna
import pytest

from steps.images.trainer_image import TrainerImage
from steps.lifecycle.train import run_training
from steps.store import open_store
from steps.store.run_layout import RunLayout
from steps.tuning.study_plan import start_study
from steps.tuning.study_state import open_study
from steps.tuning.waves import record_wave, suggest_wave
from tests.kubernetes.pipeline_tier import KubernetesPipelineTier
from tests.kubernetes.pods import trainer_pods_left
from tests.minio_server import unique_bucket_prefix
from tests.pipeline_fixtures import snapshot_of
from tests.tuning_fixtures import make_study_plan

EPOCHS = 3
ALGORITHM = "intent-classification"
# One point of the space, so the wave's one proposal is this trial whatever the sampler draws.
HOPELESS = {"learning_rate": 0.001, "batch_size": 32, "embedding_dim": 8, "hidden": 8}
SPACE = {name: {"type": "categorical", "choices": [value]} for name, value in HOPELESS.items()}
# Two earlier trials that scored perfectly at every epoch: under the median rule, the trial is
# worse than them after its first epoch and is stopped there.
PERFECT = {step: 1.0 for step in range(1, EPOCHS + 1)}
PRUNING_TIMEOUT_S = 1200  # the first trainer pod on a machine pulls a 2.7 GB image


@pytest.mark.kubernetes
@pytest.mark.timeout(PRUNING_TIMEOUT_S)
def test_a_trial_in_its_trainer_pod_reports_to_the_study_in_minio_and_stops_when_pruned(
    pipeline_env: KubernetesPipelineTier, monkeypatch, core_v1
):
    from operators.kubernetes_executor import KubernetesPodExecutor

    tier = pipeline_env
    prefix = unique_bucket_prefix()
    monkeypatch.setenv("TRAINYARD_MINIO_BUCKET_PREFIX", prefix)
    settings = replace(tier.store, bucket_prefix=prefix)
    store = open_store(settings)
    plan = start_study(store, make_study_plan(
        run_id="study-on-kubernetes", epochs=EPOCHS, max_trials=3, parallel_trials=1, pruner="median",
        min_trials=2, start_epoch=1, search_space=SPACE,
    ))
    study = open_study(store, plan.layout, plan.pruner)
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(
            value=1.0, params=HOPELESS, distributions=plan.space.distributions(), intermediate_values=PERFECT
        ))
    dataset_hash = snapshot_of(store, "intents").dataset_hash

    (proposed,) = suggest_wave(store, plan, 1)
    repository, digest = tier.images[ALGORITHM].split("@")
    image = TrainerImage(algorithm=ALGORITHM, image_reference=repository, image_digest=digest)
    trial = proposed.model_copy(update={"image": image, "executor": "kubernetes"})
    assert trial.study is not None and trial.study.trial_number == 2

    result = run_training(trial, dataset_hash, KubernetesPodExecutor(), settings)

    # The pod ended cleanly (a failed trainer raises TrainerFailed) and said why it stopped early.
    assert result.status == "pruned" and result.epochs_completed == 1
    run = RunLayout(trial.run_key)
    epochs = [json.loads(line) for line in store.get_bytes(run.train.metrics).decode().splitlines()]
    assert len(epochs) == 1
    log = store.get_bytes(run.train.trainer_log).decode()
    assert "pruned after epoch 1: median rule" in log and "trainyard-trainer: train done" in log
    assert not any(secret in log for secret in tier.secret_values())
    # What the pod told the study, through MinIO on the bridge.
    reported = open_study(store, plan.layout, plan.pruner).trials[2].intermediate_values
    assert reported == {1: epochs[0]["test_macro_f1"]}
    assert trainer_pods_left(core_v1, tier.team_namespaces["default"]) == []

    (outcome,) = record_wave(store, plan, 1)

    assert (outcome.number, outcome.status, outcome.epochs_completed) == (2, "pruned", 1)
    assert outcome.objective_per_epoch == [epochs[0]["test_macro_f1"]]
    assert open_study(store, plan.layout, plan.pruner).trials[2].state == optuna.trial.TrialState.PRUNED
