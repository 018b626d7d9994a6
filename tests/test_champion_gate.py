"""The champion gate, through the real evaluate and register steps: who replaces the champion."""
from __future__ import annotations

from steps.lifecycle.model_registry import alias_history, load_manifest, read_alias
from tests.pipeline_fixtures import make_plan, snapshot_of
from tests.registration_fixtures import evaluate_and_register, trainer_outputs

MODEL = "digits-digits-cnn"


def challenger(store, snapshot, run_id: str, macro_f1: float, **gate):
    plan = make_plan(run_id)
    return evaluate_and_register(store, plan, snapshot, trainer_outputs(store, plan, run_id.encode(), macro_f1=macro_f1),
                                 **gate)


def test_a_better_challenger_replaces_the_champion_and_a_worse_one_does_not(local_store):
    snapshot = snapshot_of(local_store)
    v1 = challenger(local_store, snapshot, "run-v1", 0.80)
    assert v1.version == 1 and v1.champion and read_alias(local_store, MODEL).version == 1

    v2 = challenger(local_store, snapshot, "run-v2", 0.85)
    assert v2.version == 2 and v2.champion
    assert read_alias(local_store, MODEL).version == 2
    assert "beats champion v1" in load_manifest(local_store, MODEL, 2).evaluation.reason

    v3 = challenger(local_store, snapshot, "run-v3", 0.82)  # beats v1, but v2 is champion now
    assert v3.version == 3 and not v3.champion
    assert "does not beat champion v2" in v3.champion_reason
    assert read_alias(local_store, MODEL).version == 2
    assert [r.version for r in alias_history(local_store, MODEL)] == [1, 2]


def test_a_tie_promotes_because_the_gate_is_at_least_as_good(local_store):
    snapshot = snapshot_of(local_store)
    challenger(local_store, snapshot, "run-v1", 0.80)
    tie = challenger(local_store, snapshot, "run-tie", 0.80)
    assert tie.champion and read_alias(local_store, MODEL).version == 2


def test_min_improvement_requires_a_margin_over_the_champion(local_store):
    snapshot = snapshot_of(local_store)
    challenger(local_store, snapshot, "run-v1", 0.80)
    marginal = challenger(local_store, snapshot, "run-marginal", 0.81, min_improvement=0.05)
    assert not marginal.champion and read_alias(local_store, MODEL).version == 1
    assert "+0.05 required" in marginal.champion_reason
    clear = challenger(local_store, snapshot, "run-clear", 0.86, min_improvement=0.05)
    assert clear.champion and read_alias(local_store, MODEL).version == 3
