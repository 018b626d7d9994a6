"""`trainyard lineage` and `trainyard models` show what a user needs to trace a model."""
from __future__ import annotations

from tests.conftest import run_cli
from tests.pipeline_fixtures import make_plan, snapshot_of
from tests.test_register import register, trainer_outputs


def test_lineage_prints_the_whole_chain_from_partitions_to_alias_history(local_store):
    snapshot = snapshot_of(local_store)
    plan = make_plan("lineage-1")
    register(local_store, plan, snapshot, trainer_outputs(local_store, plan, b"w1"), promote=True)
    out = run_cli("lineage", "digits-digits-cnn@1")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for expected in (
        "dt=2026-01-05, dt=2026-01-12, dt=2026-01-19",       # source partitions
        f"digits@{snapshot.dataset_hash}",                    # snapshot hash
        "validation        : passed",                         # validation result
        f"code:{plan.image.code_sha256}",                     # trainer pin (digest or code hash)
        "tests / lineage-1",                                  # the run
        "accuracy=0.9000",                                    # metrics
        "champion at",                                        # alias history
    ):
        assert expected in text, expected
    assert text.index("source partitions") < text.index("snapshot hash") < text.index("trainer") < text.index("alias history")


def test_lineage_json_is_the_manifest_and_champion_is_the_default_ref(local_store):
    snapshot = snapshot_of(local_store)
    plan = make_plan("lineage-2")
    register(local_store, plan, snapshot, trainer_outputs(local_store, plan, b"w2"), promote=True)
    out = run_cli("lineage", "digits-digits-cnn", "--json")
    assert out.returncode == 0 and '"version": 1' in out.stdout and '"weights_sha256"' in out.stdout


def test_models_lists_each_model_with_its_versions_and_champion(local_store):
    snapshot = snapshot_of(local_store)
    for i, promote in enumerate([True, False]):
        plan = make_plan(f"models-{i}")
        register(local_store, plan, snapshot, trainer_outputs(local_store, plan, f"w{i}".encode()), promote=promote)
    out = run_cli("models")
    assert out.returncode == 0
    assert "digits-digits-cnn  (champion: 1)" in out.stdout
    assert "@1" in out.stdout and "@2" in out.stdout
