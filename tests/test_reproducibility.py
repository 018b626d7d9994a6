"""Bit-identical weights from the same manifest; a different seed gives different weights."""
from __future__ import annotations

import pytest

from steps.executors.subprocess_executor import SubprocessExecutor
from steps.lifecycle.train import run_training
from steps.store import StoreSettings
from steps.store.local import LocalStore
from tests.conftest import run_cli
from tests.pipeline_fixtures import make_plan, snapshot_of

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("algorithm,dataset", [("digits-cnn", "digits"), ("intent-classification", "intents")])
def test_same_inputs_give_bit_identical_weights_and_another_seed_does_not(local_store, store_root, algorithm, dataset):
    settings = StoreSettings(backend="local", root=str(store_root))
    snapshot = snapshot_of(local_store, dataset)
    runs = [
        run_training(make_plan(f"r{i}", dataset=dataset, algorithm=algorithm, seed=seed), snapshot.dataset_hash,
                     SubprocessExecutor(), settings)
        for i, seed in enumerate([3, 3, 4])
    ]
    assert runs[0].weights_sha256 == runs[1].weights_sha256
    assert runs[0].weights_sha256 != runs[2].weights_sha256
    assert runs[0].eval_set_hash == runs[2].eval_set_hash  # the split depends on content, not the seed


def test_trainyard_reproduce_retrains_a_registered_model_and_reports_the_match(airflow_db, store_root):
    from trainyard.local_airflow import run_dag

    run = run_dag("training_pipeline", {"dataset": "intents", "algorithm": "intent-classification", "epochs": 2, "seed": 5})
    assert run.state == "success"
    out = run_cli("reproduce", "intents-intent-classification@1")
    assert out.returncode == 0, out.stderr
    assert "weights hash matches" in out.stdout
    assert not (store_root / "runs").exists() or not [  # the scratch run is gone, empty directories too
        p for p in (store_root / "runs").iterdir() if p.name.startswith("reproduce-")
    ]
    assert LocalStore(store_root).get_bytes("models/intents-intent-classification/versions/1/weights.safetensors")


def test_reproduce_of_an_unknown_version_names_it(local_store):
    from tests.test_register import register, trainer_outputs

    out = run_cli("reproduce", "digits-digits-cnn@9")  # nothing registered yet
    assert out.returncode == 2 and "no such model 'digits-digits-cnn'" in out.stderr, out.stderr
    plan = make_plan("known-9")
    register(local_store, plan, snapshot_of(local_store), trainer_outputs(local_store, plan, b"w"))
    out = run_cli("reproduce", "digits-digits-cnn@9")
    assert out.returncode == 2 and "has no version 9; registered versions: [1]" in out.stderr, out.stderr


def test_trainyard_reproduce_exits_3_and_says_so_when_the_weights_differ(store_root, local_store):
    """A registered manifest whose weights its recorded inputs do not produce (here: weights the
    trainer never wrote) is reported, through the console script, with exit code 3."""
    from tests.registration_fixtures import register, trainer_outputs

    plan = make_plan("not-reproducible", dataset="intents", algorithm="intent-classification", epochs=1)
    registered = register(local_store, plan, snapshot_of(local_store, "intents"),
                          trainer_outputs(local_store, plan, b"weights no trainer produced"))
    out = run_cli("reproduce", f"{registered.model_name}@{registered.version}")
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"NOT reproduced {registered.model_name}@1: expected weights {registered.weights_sha256}" in out.stdout
