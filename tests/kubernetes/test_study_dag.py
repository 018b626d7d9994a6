"""The hyperparameter_search DAG with the Kubernetes executor, end to end on the tier: every trial is
a pod of the mapped TrainerPodOperator (train_wave_k), the digest-pinned image from the tier's
registry; a trial is stopped in its pod by the median rule through the study's journal in the
tier's MinIO; the best completed trial goes through evaluate -> register.

dag.test() in this process, as tests/kubernetes/test_training_pipeline.py runs training_pipeline.
The grid and the seed fix the order of the trials: two learning rates that train, then one so
small that the model barely moves, which the median of the first two stops after its first epoch.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from steps.lifecycle.model_registry import load_manifest
from steps.lifecycle.plan import run_key_for
from steps.lifecycle.register import RegisteredVersion
from steps.store import open_store
from steps.store.run_layout import RunLayout
from steps.tuning.study_record import load_study_record
from tests.kubernetes.pipeline_tier import KubernetesPipelineTier
from tests.kubernetes.pods import trainer_pods_left
from tests.minio_server import unique_bucket_prefix

ALGORITHM = "intent-classification"
HOPELESS_LEARNING_RATE = 1e-6
# Grid order under seed 3: 0.1 and 0.05 (wave 1: train_wave_1 maps two pods), then 1e-6 (wave 2).
STUDY = {
    "dataset": "intents", "algorithm": ALGORITHM, "sampler": "grid", "seed": 3, "epochs": 2,
    "max_trials": 3, "parallel_trials": 2, "pruner": "median", "min_trials": 2, "start_epoch": 1,
    "search_space": {"learning_rate": {"type": "categorical", "choices": [0.05, 0.1, HOPELESS_LEARNING_RATE]}},
}
STUDY_TIMEOUT_S = 1800  # the first trainer pod on a machine pulls a 2.7 GB image


@pytest.mark.kubernetes
@pytest.mark.timeout(STUDY_TIMEOUT_S)
def test_study_dag_trains_its_trials_as_mapped_pods_prunes_one_and_registers_the_best(
    pipeline_env: KubernetesPipelineTier, airflow_db, monkeypatch, core_v1, capfd
):
    from trainyard.local_airflow import run_dag

    tier = pipeline_env
    prefix = unique_bucket_prefix()
    monkeypatch.setenv("TRAINYARD_MINIO_BUCKET_PREFIX", prefix)
    store = open_store(replace(tier.store, bucket_prefix=prefix))

    run = run_dag("hyperparameter_search", STUDY)

    assert run.state == "success", (run.failed_tasks, run.upstream_failed_tasks)
    assert "train_wave_2" not in run.skipped_tasks and "train_wave_3" in run.skipped_tasks
    record = load_study_record(store, run_key_for(run.dag_id, run.run_id))
    assert record.status == "finished"
    trials = {t.number: t for t in record.trials}
    assert trials[2].params["learning_rate"] == HOPELESS_LEARNING_RATE, "the grid's order under seed 3 changed"
    assert [(trials[n].status, trials[n].epochs_completed) for n in range(3)] == [
        ("completed", 2), ("completed", 2), ("pruned", 1)
    ]
    assert record.epochs_trained == 5
    pruned = trials[2]
    assert len(pruned.objective_per_epoch) == 1
    assert len(store.get_bytes(RunLayout(pruned.run_key).train.metrics).decode().splitlines()) == 1
    # The operator streams each pod's log into its task's log: only the third trial's can say this.
    task_logs = capfd.readouterr().out
    assert "trainyard-trainer: pruned after epoch 1: median rule" in task_logs
    assert not any(secret in task_logs for secret in tier.secret_values())

    best = record.trial(record.best_trial)
    assert best.status == "completed" and best == record.trials[0]
    registered = RegisteredVersion.model_validate_json(store.get_bytes(RunLayout(best.run_key).registered))
    manifest = load_manifest(store, registered.model_name, registered.version)
    assert manifest.executor == "kubernetes"
    assert manifest.trainer.pinned_reference == tier.images[ALGORITHM]  # the trial's pod ran the pinned image
    assert manifest.study is not None
    assert (manifest.study.study_id, manifest.study.trial_number) == (record.study_id, best.number)
    assert manifest.weights_sha256 == best.weights_sha256
    assert manifest.evaluation.champion_source == "none" and registered.champion
    # Succeeded trainer pods are deleted, the pruned trial's too (it exited 0).
    assert trainer_pods_left(core_v1, tier.team_namespaces["default"]) == []
