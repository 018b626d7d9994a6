"""Optuna's samplers, proposed in waves: the same seed proposes the same trials in the same order, each
sampler keeps its own behaviour across waves (one process per wave), and proposals stay in the space.
The objective is a formula of the parameters: what is under test is the proposing, not training."""
from __future__ import annotations

import math

import pytest

from steps.tuning.request import SAMPLERS
from tests.tuning_fixtures import make_study_plan, proposals, synthetic_study


def objective(params: dict) -> float:
    """Best at learning_rate ~0.03 and embedding_dim 32; a smooth hill the samplers can climb."""
    return (
        1.0
        - (math.log10(params["learning_rate"]) + 1.5) ** 2
        - 0.2 * (math.log2(params.get("embedding_dim", 32)) - 5) ** 2
        - 0.05 * (math.log2(params.get("hidden", 16)) - 4) ** 2
        - 0.02 * (params.get("batch_size", 16) != 16)
    )


def study(sampler: str, seed: int = 7, max_trials: int = 8, parallel_trials: int = 2, **extra):
    plan = make_study_plan(sampler=sampler, seed=seed, max_trials=max_trials, parallel_trials=parallel_trials, **extra)
    return plan, synthetic_study(plan, objective)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_same_seed_proposes_the_same_trials_in_the_same_order_and_another_seed_does_not(sampler):
    _, first = study(sampler)
    _, again = study(sampler)
    _, other = study(sampler, seed=8)

    assert proposals(first) == proposals(again)
    assert [t.number for w in first for t in w.trials] == list(range(8))
    assert proposals(other) != proposals(first)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_proposal_lies_in_the_search_space(sampler):
    plan, waves = study(sampler)
    space = plan.space.params
    for params in proposals(waves):
        assert set(params) == set(space)
        for name, value in params.items():
            spec = space[name]
            if spec.type == "categorical":
                assert value in spec.choices
            else:
                assert spec.low <= value <= spec.high
                assert isinstance(value, int) == (spec.type == "int")


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes"])
def test_a_later_wave_never_repeats_the_first_one(sampler):
    # A sampler rebuilt for every wave from the same seed would start its random stream over.
    _, waves = study(sampler)
    learning_rates = [p["learning_rate"] for p in proposals(waves)]
    assert len(set(learning_rates)) == len(learning_rates)


def test_the_grid_sampler_visits_every_grid_point_exactly_once():
    space = {
        "learning_rate": {"type": "float", "low": 0.001, "high": 0.1, "log": True, "grid_points": 3},
        "batch_size": {"type": "categorical", "choices": [8, 32]},
    }
    plan, waves = study("grid", max_trials=6, search_space=space)

    visited = [(p["learning_rate"], p["batch_size"]) for p in proposals(waves)]
    expected = {(lr, bs) for lr in plan.space.grid()["learning_rate"] for bs in (8, 32)}
    assert len(visited) == 6 and set(visited) == expected
    assert plan.space.grid()["learning_rate"] == pytest.approx([0.001, 0.01, 0.1])


def test_the_sobol_sampler_keeps_its_place_in_the_sequence_from_wave_to_wave():
    _, waves = study("qmc")
    # The sampler's position is a study attribute, carried by each wave's record into the next wave.
    positions = [next(v for k, v in w.study_system_attrs.items() if k.startswith("qmc:")) for w in waves]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert len({p["learning_rate"] for p in proposals(waves)}) == 8


def test_cmaes_proposals_after_its_first_trial_come_from_its_kept_state():
    _, waves = study("cmaes", max_trials=12, parallel_trials=3)
    later = [t for w in waves[1:] for t in w.trials]
    assert later and all(any(key.startswith("cma:") for key in t.system_attrs) for t in later)


def test_tpe_climbs_where_random_search_wanders_with_the_same_seed_and_budget():
    budget = dict(max_trials=24, parallel_trials=2)
    _, tpe = study("tpe", **budget)
    _, random = study("random", **budget)
    # After TPE's 10 random start-up trials, its proposals score higher than random search's.
    assert sorted(map(objective, proposals(tpe)[12:]))[7] > sorted(map(objective, proposals(random)[12:]))[7]
