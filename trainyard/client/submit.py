"""Submitting runs: check a request on this machine first, with the same bounds and words as the
form (steps.lifecycle.plan) and the local catalog, then trigger the DAG through the REST API.

The check imports neither Airflow nor the REST client, so a bad request is refused at once,
before any network. `submit_run` is generic over the DAG; a DAG adds its own local check to
LOCAL_CHECKS (training_pipeline's is below); every team's hyperparameter_search DAG gets the
study's checks (check_study_conf).
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

TRAINING_DAG = "training_pipeline"

# Any valid value of each field the check needs but the request leaves to the DAG's defaults;
# the check then speaks only about values the user gave.
_VALID_FILLERS: dict[str, Any] = {
    "dataset": "placeholder", "algorithm": "placeholder", "epochs": 1, "learning_rate": 1.0, "batch_size": 1, "seed": 0,
}


def check_run_params(conf: Mapping[str, Any], *, require_names: bool = False) -> None:
    """Refuse out-of-bounds values and unknown names the way the plan task would (BadRequest,
    UnknownName), without Airflow. Keys the run request does not know are left to the DAG."""
    from steps.lifecycle.plan import RunRequest, catalog_pair, parse_request
    from steps.store import validate_name

    given = {k: v for k, v in conf.items() if k in RunRequest.model_fields and v is not None}
    if require_names:
        missing = [name for name in ("dataset", "algorithm") if not given.get(name)]
        if missing:
            from steps.lifecycle.plan import BadRequest

            raise BadRequest(f"invalid run parameters: {', '.join(missing)}: a value is required")
    parse_request({**_VALID_FILLERS, **given})
    if given.get("model_name"):
        validate_name("model", given["model_name"])
    if "dataset" in given or "algorithm" in given:
        from steps.catalog.catalog import Catalog
        from trainyard.settings import Settings

        settings = Settings.load()
        catalog = Catalog.load(settings.datasets_catalog, settings.algorithms_catalog)
        if "dataset" in given and "algorithm" in given:
            catalog_pair(catalog, given["dataset"], given["algorithm"])
        elif "dataset" in given:
            catalog.dataset(given["dataset"])
        else:
            catalog.algorithm(given["algorithm"])


def check_training_conf(conf: Mapping[str, Any]) -> None:
    check_run_params(conf, require_names=True)


#: DAG id -> its local check of a run's conf. Other DAGs get check_run_params: every Trainyard DAG
#: bounds the run parameters it takes with the same BOUNDS, and Airflow's Params check the rest.
LOCAL_CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {TRAINING_DAG: check_training_conf}


def check_study_conf(dag_id: str, conf: Mapping[str, Any]) -> None:
    """A hyperparameter study's conf gets the checks its plan_study task makes (steps/tuning): the
    space, the sampler, the trial counts, the dataset and algorithm. The team is the DAG's unless named."""
    from steps.catalog.catalog import Catalog
    from steps.tuning.request import parse_study_request, study_dag_team
    from steps.tuning.study_plan import check_study_request
    from trainyard.settings import Settings

    settings = Settings.load()
    request = parse_study_request({"team": study_dag_team(dag_id), **conf})
    check_study_request(request, Catalog.load(settings.datasets_catalog, settings.algorithms_catalog))


def check_conf(dag_id: str, conf: Mapping[str, Any]) -> None:
    from steps.tuning.request import study_dag_team

    if study_dag_team(dag_id) is not None:
        check_study_conf(dag_id, conf)
        return
    LOCAL_CHECKS.get(dag_id, check_run_params)(conf)


def new_run_id(now: datetime | None = None) -> str:
    """Short, shell-safe and unique: submit__20260301T101500Z-3fa29c."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"submit__{stamp}-{secrets.token_hex(3)}"
