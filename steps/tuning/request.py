"""What a user asks of a study, with the bounds the CLI, the REST API and the Params form share."""
from __future__ import annotations

import math
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from steps.lifecycle.plan import BadRequest
from steps.training.contract import Objective, PrunerKind

#: Optuna's samplers: random, grid, TPE, CMA-ES and quasi-random (scrambled Sobol).
Sampler = Literal["random", "grid", "tpe", "cmaes", "qmc"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)
#: The study DAG has this many wave stages (Airflow DAGs cannot loop); a study needs
#: ceil(max_trials / parallel_trials) of them.
MAX_WAVES = 16
#: A study's start_epoch when neither the study nor its algorithm names one.
DEFAULT_START_EPOCH = 2
# Param bounds, shared with the study DAG's Params form (operators/tuning_params.py renders these).
STUDY_BOUNDS: dict[str, dict[str, Any]] = {
    "max_trials": {"minimum": 1, "maximum": 64},
    "parallel_trials": {"minimum": 1, "maximum": 8},
    "epochs": {"minimum": 1, "maximum": 200},
    "min_trials": {"minimum": 0, "maximum": 64},
    "start_epoch": {"minimum": 1, "maximum": 200},
    "seed": {"minimum": 0, "maximum": 2**31 - 1},
}


def study_dag_id(team: str) -> str:
    """One study DAG per team, so the team's pool bounds its trials (pools are fixed when a DAG is parsed)."""
    return "hyperparameter_search" if team == "default" else f"hyperparameter_search_{team}"


def study_dag_team(dag_id: str) -> str | None:
    """The team a study DAG id belongs to (study_dag_id's inverse); None for any other DAG."""
    if dag_id == "hyperparameter_search":
        return "default"
    team = dag_id.removeprefix("hyperparameter_search_")
    return team if team != dag_id and team else None


def _bounded(name: str, default: Any) -> Any:
    bounds = STUDY_BOUNDS[name]
    return Field(default=default, ge=bounds["minimum"], le=bounds["maximum"])


class StudyRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    algorithm: str
    model_name: str = ""  # defaults to "<dataset>-<algorithm>"
    epochs: int | None = _bounded("epochs", None)  # every trial's budget; None: the algorithm's default
    max_trials: int = _bounded("max_trials", 8)
    parallel_trials: int = _bounded("parallel_trials", 2)
    sampler: Sampler = "tpe"
    pruner: PrunerKind = "median"
    min_trials: int = _bounded("min_trials", 3)  # completed trials before the median rule stops any
    # The first epoch after which a trial may be stopped; None: the algorithm's (config/algorithms.yaml
    # early_stopping), else DEFAULT_START_EPOCH.
    start_epoch: int | None = _bounded("start_epoch", None)
    objective: Objective = "macro_f1"  # higher is better
    seed: int = _bounded("seed", 42)
    search_space: dict[str, Any] | None = None  # None: the algorithm's default space (config/algorithms.yaml)
    team: str = "default"

    @model_validator(mode="after")
    def _fits_the_dag(self) -> StudyRequest:
        waves = math.ceil(self.max_trials / self.parallel_trials)
        if waves > MAX_WAVES:
            raise ValueError(
                f"max_trials {self.max_trials} at parallel_trials {self.parallel_trials} needs {waves} waves, "
                f"and the study DAG runs at most {MAX_WAVES}; raise parallel_trials to at least "
                f"{math.ceil(self.max_trials / MAX_WAVES)} or lower max_trials to {MAX_WAVES * self.parallel_trials}"
            )
        return self

    @property
    def waves(self) -> int:
        return math.ceil(self.max_trials / self.parallel_trials)


def parse_study_request(values: dict[str, Any]) -> StudyRequest:
    """The request, or BadRequest naming every problem in one line."""
    cleaned = {name: value for name, value in values.items() if value is not None}
    try:
        return StudyRequest.model_validate(cleaned)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] in ("literal_error", "greater_than_equal", "less_than_equal", "int_parsing", "int_type"):
                message += f" (got {error['input']!r})"
            problems.append(f"{where}: {message}" if where else message)
        raise BadRequest("invalid study parameters: " + "; ".join(problems)) from None
