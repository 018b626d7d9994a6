"""Builders for hyperparameter-study records used across the tuning tests (real steps, no Airflow)."""
from __future__ import annotations

from typing import Any

from steps.tuning.request import parse_study_request
from steps.tuning.study_plan import StudyPlan, plan_study
from tests.pipeline_fixtures import catalog


def make_study_plan(run_id: str = "study-1", **request: Any) -> StudyPlan:
    values = {"dataset": "intents", "algorithm": "intent-classification", "epochs": 3, **request}
    return plan_study(
        parse_study_request(values), catalog(), dag_id="tests", airflow_run_id=run_id, logical_date=None,
        executor="subprocess", split_seed=11, test_fraction=0.2, num_threads=1,
    )


def synthetic_study(plan: StudyPlan, objective) -> list:
    """Propose every wave of `plan` the way the DAG does, telling each proposal `objective(params)`
    at once: the proposals as a list of waves (no training; the samplers are what is under test)."""
    import optuna
    from optuna.distributions import json_to_distribution

    from steps.tuning.waves import propose_wave

    history: list = []
    attrs: dict = {}
    waves = []
    for wave in range(1, plan.request.waves + 1):
        record = propose_wave(plan, history, attrs, wave)
        waves.append(record)
        for proposed in record.trials:
            history.append(
                optuna.trial.create_trial(
                    value=objective(proposed.params),
                    params=proposed.params,
                    distributions={n: json_to_distribution(d) for n, d in proposed.distributions.items()},
                    system_attrs=proposed.system_attrs,
                )
            )
        attrs = record.study_system_attrs
    return waves


def proposals(waves) -> list[dict]:
    return [trial.params for wave in waves for trial in wave.trials]
