"""The hyperparameter_search Params form: bounds from steps.tuning.request.STUDY_BOUNDS, choices from the
catalogs, the search space's JSON schema from steps.tuning.space (small local reads; no network).

The form and the REST API refuse what a JSON schema can say (types, bounds, names, an empty space or
categorical); the study's first task refuses the rest (low > high, a log scale from 0, a hyperparameter
the chosen algorithm lacks) with the same words as the CLI, before any trial runs.
"""
from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from operators.params import catalog_names
from steps.training.contract import OBJECTIVES, PRUNERS
from steps.tuning.request import DEFAULT_START_EPOCH, SAMPLERS, STUDY_BOUNDS


def _searchable_names() -> list[str]:
    import yaml

    from steps.tuning.space import NOT_SEARCHABLE
    from trainyard.settings import Settings

    algorithms = yaml.safe_load(Settings.load().algorithms_catalog.read_text()) or {}
    names = {name for spec in algorithms.values() for name in (spec.get("defaults") or {})}
    return sorted(names - set(NOT_SEARCHABLE))


def search_space_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    from steps.tuning.space import Param as SpaceParam

    schema = TypeAdapter(dict[str, SpaceParam]).json_schema()
    schema["$defs"]["CategoricalParam"]["properties"]["choices"]["minItems"] = 1
    schema["minProperties"] = 1
    schema["propertyNames"] = {"enum": _searchable_names()}
    schema["type"] = ["null", "object"]
    return schema


def study_params(team: str) -> dict[str, Param]:
    datasets, algorithms = catalog_names()
    b = STUDY_BOUNDS
    return {
        "dataset": Param(datasets[0], type="string", enum=datasets, title="Dataset",
                         description="Catalog name of the dataset to snapshot (config/datasets.yaml)."),
        "algorithm": Param(algorithms[0], type="string", enum=algorithms, title="Algorithm",
                           description="Registered training algorithm (config/algorithms.yaml)."),
        "model_name": Param(
            None, type=["null", "string"], title="Model name", pattern=r"^([a-z0-9][a-z0-9._-]{0,62})?$",
            description="Registry name the best trial is registered under; empty means <dataset>-<algorithm>.",
        ),
        "max_trials": Param(8, type="integer", title="Max trials", description="Trials the study runs in all.",
                            **b["max_trials"]),
        "parallel_trials": Param(
            2, type="integer", title="Parallel trials", **b["parallel_trials"],
            description="Trials per wave, run side by side (the team's pool bounds them too).",
        ),
        "sampler": Param("tpe", type="string", enum=list(SAMPLERS), title="Sampler",
                         description="Optuna sampler: random, grid, tpe, cmaes or qmc (scrambled Sobol)."),
        "pruner": Param("median", type="string", enum=list(PRUNERS), title="Early stopping",
                        description="Optuna pruner: the median stopping rule, Hyperband, successive halving, or none."),
        "min_trials": Param(3, type="integer", title="Completed trials before stopping any", **b["min_trials"],
                            description="The median rule stops no trial until this many have completed."),
        "start_epoch": Param(
            None, type=["null", "integer"], title="First epoch a trial may stop after", **b["start_epoch"],
            description="No trial is stopped before this epoch; empty means the algorithm's "
                        f"(config/algorithms.yaml early_stopping), else {DEFAULT_START_EPOCH}.",
        ),
        "objective": Param("macro_f1", type="string", enum=list(OBJECTIVES), title="Objective",
                           description="Metric to maximise on the eval set."),
        "epochs": Param(None, type=["null", "integer"], title="Epochs per trial", **b["epochs"],
                        description="Every trial's budget; empty means the algorithm's default."),
        "seed": Param(42, type="integer", title="Study seed", **b["seed"],
                      description="Seeds the sampler and every trial's training."),
        "search_space": Param(
            None, title="Search space", **search_space_schema(),
            description='JSON, e.g. {"learning_rate": {"type": "float", "low": 0.001, "high": 0.1, "log": true}, '
                        '"batch_size": {"type": "categorical", "choices": [16, 32]}}; empty means the '
                        "algorithm's default space (config/algorithms.yaml).",
        ),
        "team": Param(team, type="string", enum=[team], title="Team",
                      description="The team whose pool bounds the trials (one study DAG per team)."),
    }
