"""Backfill planning: exact replays of registered dates, historical versions otherwise.

The real `airflow backfill` path runs in tests/e2e against a running Airflow; here the
same steps run in-process, with a model first registered for a past logical date.
"""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from steps.data.snapshot import SnapshotError, snapshot_dataset
from steps.executors.subprocess_executor import SubprocessExecutor
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.model_registry import load_manifest, read_alias, registered_versions
from steps.lifecycle.replay import (
    ReplayRefused,
    WeightsMismatch,
    backfill_plan,
    check_trainer_available,
    verify_reproduction,
)
from steps.lifecycle.train import run_training
from steps.store import StoreSettings
from steps.store.local import LocalStore
from tests.pipeline_fixtures import catalog, make_plan
from trainyard.local_airflow import run_dag

pytestmark = pytest.mark.slow
JAN_12 = datetime(2026, 1, 12, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def backfill_store(airflow_db, tmp_path_factory):
    """One store with a model registered for 2026-01-12, shared by this module's tests."""
    root = tmp_path_factory.mktemp("backfill") / "store"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRAINYARD_STORE", "local")
        patch.setenv("TRAINYARD_STORE_ROOT", str(root))
        run = run_dag("scheduled_retraining", {"epochs": 2}, logical_date=JAN_12)
        assert run.state == "success", run.failed_tasks
        yield root


@pytest.fixture
def store_root(backfill_store, monkeypatch):
    monkeypatch.setenv("TRAINYARD_STORE", "local")
    monkeypatch.setenv("TRAINYARD_STORE_ROOT", str(backfill_store))
    return backfill_store


@pytest.fixture
def model_for_jan_12(store_root):
    return load_manifest(LocalStore(store_root), "digits-digits-cnn", 1)


def test_a_run_for_a_past_date_sees_only_partitions_up_to_that_date(model_for_jan_12):
    assert model_for_jan_12.dataset.partitions == ["dt=2026-01-05", "dt=2026-01-12"]
    assert model_for_jan_12.airflow.logical_date.startswith("2026-01-12")


def test_exact_replay_of_a_registered_date_reproduces_its_weights_hash(model_for_jan_12, store_root):
    store = LocalStore(store_root)
    plan = backfill_plan(store, make_plan("backfill-1"), date(2026, 1, 12), "exact")
    assert plan.replay == "exact" and plan.replay_of == "digits-digits-cnn@1" and plan.promote is False
    assert plan.pinned_dataset_hash == model_for_jan_12.dataset.dataset_hash
    assert plan.hyperparameters == model_for_jan_12.hyperparameters and plan.seed == model_for_jan_12.seed
    result = run_training(plan, plan.pinned_dataset_hash, SubprocessExecutor(), StoreSettings(backend="local", root=str(store_root)))
    record = verify_reproduction(store, plan, result.weights_sha256)
    assert record.weights_match and record.message.startswith("reproduced: weights hash matches")
    with pytest.raises(WeightsMismatch) as err:
        verify_reproduction(store, plan, "f" * 64)
    assert model_for_jan_12.weights_sha256 in str(err.value) and "f" * 64 in str(err.value)


def test_a_date_without_a_model_plans_a_historical_version_that_never_promotes(model_for_jan_12, store_root):
    plan = backfill_plan(LocalStore(store_root), make_plan("backfill-2"), date(2026, 1, 19), "exact")
    assert plan.historical and not plan.promote and plan.replay == "none" and plan.replay_of is None


def test_current_code_replay_keeps_old_data_and_seeds(model_for_jan_12, store_root):
    plan = backfill_plan(LocalStore(store_root), make_plan("backfill-3", seed=99), date(2026, 1, 12), "current-code")
    assert plan.replay == "current-code" and plan.seed == model_for_jan_12.seed and plan.historical
    assert plan.pinned_dataset_hash == model_for_jan_12.dataset.dataset_hash and not plan.promote


def test_a_backfill_registration_never_moves_the_champion(model_for_jan_12, store_root):
    from steps.data.snapshot import load_snapshot
    from steps.data.validation_run import validate_snapshot
    from steps.lifecycle.evaluate import evaluate_challenger
    from steps.lifecycle.register import register_model

    store = LocalStore(store_root)
    settings = StoreSettings(backend="local", root=str(store_root))
    champion_before = read_alias(store, "digits-digits-cnn")
    plan = backfill_plan(store, make_plan("backfill-4", epochs=1), date(2026, 1, 19), "exact")
    snapshot = snapshot_dataset(store, "digits", catalog().dataset("digits").source, as_of=date(2026, 1, 19)).snapshot
    validation = validate_snapshot(store, "digits", snapshot.dataset_hash, "digits", plan.run_key)
    result = run_training(plan, snapshot.dataset_hash, SubprocessExecutor(), settings)
    evaluation = evaluate_challenger(store, settings, plan, result, SubprocessExecutor())
    registered = register_model(store, plan, load_snapshot(store, "digits", snapshot.dataset_hash),
                                validation.report_key, validation.expectations_evaluated, result, evaluation,
                                historical=plan.historical)
    assert not registered.champion and not evaluation.promote and "backfill" in evaluation.reason
    assert load_manifest(store, "digits-digits-cnn", registered.version).historical
    assert read_alias(store, "digits-digits-cnn") == champion_before


def test_exact_replay_refuses_a_trainer_whose_pinned_code_is_gone():
    image = TrainerImage(algorithm="digits-cnn", image_reference="x", code_sha256="0" * 64,
                         entrypoint="images/digits-cnn/train.py")
    with pytest.raises(ReplayRefused, match="trainer code 000000000000 .* no longer available"):
        check_trainer_available(image)


@pytest.mark.registry
def test_exact_replay_names_a_digest_missing_from_the_registry_and_never_uses_a_tag(oci_registry):
    from operators.image_resolution import digest_checker_for
    from steps.images.image_digest import resolve_digest_by_head
    from trainyard.settings import Settings

    oci_registry.push_test_image("trainyard/digits-cnn", "1.0.0", b"present")
    missing = "sha256:" + "ab" * 32
    image = TrainerImage(algorithm="digits-cnn", image_reference=f"{oci_registry.host}/trainyard/digits-cnn:1.0.0",
                         image_digest=missing)

    exists = digest_checker_for(Settings(executor="container", registry_insecure=True))
    present = f"{oci_registry.host}/trainyard/digits-cnn@{resolve_digest_by_head(image.image_reference, insecure=True).digest}"
    assert exists(present) is True
    with pytest.raises(ReplayRefused, match=f"image digest {missing} .* no longer in the registry"):
        check_trainer_available(image, exists)


def test_a_backfill_date_before_any_data_is_refused_by_name(tmp_path):
    local_store = LocalStore(tmp_path / "store")
    source = catalog().dataset("digits").source
    with pytest.raises(SnapshotError, match="no dt= partitions up to 2025-12-01; the earliest is dt=2026-01-05"):
        snapshot_dataset(local_store, "digits", source, as_of=date(2025, 12, 1))
    assert not list(local_store.list_keys("datasets/snapshots/"))


def test_a_champion_scored_on_another_eval_set_is_re_evaluated_on_the_challengers(model_for_jan_12, store_root):
    """The Jan-12 champion saw fewer partitions, so its eval set differs from today's: the
    evaluate step runs the champion's trainer in evaluate mode on the challenger's eval set."""
    run = run_dag("training_pipeline", {"dataset": "digits", "algorithm": "digits-cnn", "epochs": 1, "seed": 5})
    assert run.state == "success", run.failed_tasks
    store = LocalStore(store_root)
    latest = load_manifest(store, "digits-digits-cnn", max(registered_versions(store, "digits-digits-cnn")))
    assert latest.dataset.eval_set_hash != model_for_jan_12.dataset.eval_set_hash
    assert latest.evaluation.champion_version == 1 and latest.evaluation.champion_source == "re-evaluated"
    assert latest.evaluation.champion_metrics.n_examples == latest.metrics.n_examples
