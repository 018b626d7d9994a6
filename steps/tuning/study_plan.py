"""Turn a study request into a StudyPlan before any trial runs, and keep it in the store.

The plan is resolved once (dataset, algorithm, trainer image pinned to a digest or code hash,
search space) and stored create-only: a resumed study runs on the plan it started with, so every
trial of a study trains with the same trainer even if a newer image was pushed meanwhile.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict

from steps.catalog.catalog import AlgorithmEntry, Catalog
from steps.lifecycle.plan import BadRequest, RunPlan, parse_request, plan_run
from steps.lifecycle.study_lineage import StudyLineage
from steps.store import ArtifactStore, ObjectExists
from steps.store.run_layout import StudyLayout
from steps.training.contract import PrunerSpec, PruningSpec
from steps.tuning.request import DEFAULT_START_EPOCH, StudyRequest
from steps.tuning.space import SearchSpace, parse_space
from steps.tuning.study_state import create_study


class StudyPlan(BaseModel):
    """Everything a study's tasks need, resolved once at its start."""

    model_config = ConfigDict(frozen=True)

    study_id: str  # the run key of the study's DAG run
    request: StudyRequest  # as asked, with epochs and the search space filled in
    space: SearchSpace
    pruner: PrunerSpec
    base: RunPlan  # what every trial shares; a trial adds its parameters (trial_plan)

    @property
    def layout(self) -> StudyLayout:
        return StudyLayout(self.study_id)

    def trial_plan(self, number: int, params: dict[str, Any]) -> RunPlan:
        """Trial `number` as an ordinary run of its own: the study's plan with the trial's parameters."""
        values = self.base.model_dump(mode="json")
        values.update(
            run_key=self.layout.trial_run_key(number),
            hyperparameters={**self.base.hyperparameters, **params},
            study=StudyLineage(study_id=self.study_id, trial_number=number).model_dump(),
            pruning=PruningSpec(
                study_id=self.study_id, trial_number=number, objective=self.request.objective, pruner=self.pruner
            ).model_dump(),
            # A trial always trains: the study needs its per-epoch reports, which a reused version lacks.
            force=True,
        )
        return RunPlan.model_validate(values)


def resolve_request(request: StudyRequest, algorithm: AlgorithmEntry) -> tuple[StudyRequest, SearchSpace]:
    """Check the request against the algorithm; fill in its epochs, start epoch and search space (no I/O)."""
    raw_space = request.search_space if request.search_space is not None else algorithm.search_space
    if request.search_space is None and not raw_space:
        raise BadRequest(f"algorithm {algorithm.name!r} declares no default search space; give one")
    space = parse_space(raw_space, algorithm.name, algorithm.defaults)
    epochs = request.epochs or int(algorithm.defaults.get("epochs", 1))
    start_epoch = request.start_epoch or algorithm.early_stopping.start_epoch or DEFAULT_START_EPOCH
    if request.pruner != "none" and start_epoch >= epochs:
        instead = f"use a start_epoch below {epochs} (or pruner none)" if epochs > 1 else "use pruner none or more epochs"
        raise BadRequest(f"start_epoch {start_epoch} leaves nothing to stop: trials train {epochs} epochs; {instead}")
    resolved = {"epochs": epochs, "start_epoch": start_epoch, "search_space": space.to_raw()}
    return request.model_copy(update=resolved), space


def check_study_request(request: StudyRequest, catalog: Catalog) -> tuple[StudyRequest, SearchSpace]:
    """Everything that can be refused without the store or a registry: what the CLI checks first."""
    dataset = catalog.dataset(request.dataset)
    algorithm = catalog.algorithm(request.algorithm)
    if algorithm.schema_name != dataset.schema_name:
        raise BadRequest(
            f"algorithm {algorithm.name!r} trains on {algorithm.schema_name!r} data, but dataset "
            f"{dataset.name!r} has schema {dataset.schema_name!r}"
        )
    return resolve_request(request, algorithm)


def plan_study(
    request: StudyRequest,
    catalog: Catalog,
    *,
    dag_id: str,
    airflow_run_id: str,
    logical_date: date | None,
    executor: str,
    split_seed: int,
    test_fraction: float,
    num_threads: int,
    image_resolver=None,
) -> StudyPlan:
    resolved, space = check_study_request(request, catalog)
    algorithm = catalog.algorithm(resolved.algorithm)
    run_request = parse_request(
        {
            "dataset": resolved.dataset,
            "algorithm": resolved.algorithm,
            "model_name": resolved.model_name,
            "epochs": resolved.epochs,
            "learning_rate": algorithm.defaults["learning_rate"],
            "batch_size": algorithm.defaults["batch_size"],
            "seed": resolved.seed,
            "team": resolved.team,
        }
    )
    base = plan_run(
        run_request,
        catalog,
        dag_id=dag_id,
        airflow_run_id=airflow_run_id,
        logical_date=logical_date,
        executor=executor,
        split_seed=split_seed,
        test_fraction=test_fraction,
        num_threads=num_threads,
        image_resolver=image_resolver,
    )
    pruner = PrunerSpec(
        kind=resolved.pruner, min_trials=resolved.min_trials, start_epoch=resolved.start_epoch, max_epochs=resolved.epochs
    )
    return StudyPlan(study_id=base.run_key, request=resolved, space=space, pruner=pruner, base=base)


def stored_plan(store: ArtifactStore, study_id: str) -> StudyPlan | None:
    key = StudyLayout(study_id).spec
    return StudyPlan.model_validate_json(store.get_bytes(key)) if store.exists(key) else None


def _same_request(stored: StudyPlan, resolved: StudyRequest) -> StudyPlan:
    if stored.request != resolved:
        raise BadRequest(
            f"study {stored.study_id} was started with other parameters; a cleared run resumes the study "
            f"it started (trigger a new run for a new study)"
        )
    return stored


def resumed_plan(store: ArtifactStore, study_id: str, request: StudyRequest, catalog: Catalog) -> StudyPlan | None:
    """The plan a cleared or restarted study started with (no registry is asked again), or None."""
    stored = stored_plan(store, study_id)
    if stored is None:
        return None
    return _same_request(stored, check_study_request(request, catalog)[0])


def start_study(store: ArtifactStore, plan: StudyPlan) -> StudyPlan:
    """Store the plan (create-only) and create the Optuna study; a resumed study gets its stored plan."""
    try:
        store.put_bytes(plan.layout.spec, plan.model_dump_json(indent=2).encode(), if_absent=True)
    except ObjectExists:  # a try of the same run got there first
        stored = stored_plan(store, plan.study_id)
        assert stored is not None
        plan = _same_request(stored, plan.request)
    create_study(store, plan.layout)
    return plan
