"""Turn a user's run request into a fully resolved, typed RunPlan, before any work starts.

Bounds here are the same as the Airflow Params form's, so the CLI and the UI refuse the
same requests with the same words.
"""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steps.catalog.catalog import AlgorithmEntry, Catalog, DatasetEntry
from steps.executors.base import ShapeUnsupported, refuse_unsupported_shape
from steps.hashing import sha256_bytes
from steps.images.code_hash import trainer_code_sha256
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.bounds import BOUNDS as BOUNDS  # re-exported: the form and the CLI read it here too
from steps.lifecycle.bounds import DEFAULT_SEED
from steps.lifecycle.study_lineage import StudyLineage
from steps.store import validate_name
from steps.store.run_layout import RunLayout
from steps.training.contract import PruningSpec
from steps.training.shape import MAX_NODES, MAX_PROCS_PER_NODE, TrainingShape


class BadRequest(ValueError):
    """A run request that cannot run; the message names every problem."""


#: The hyperparameters a request may set; left out (None), the algorithm registry's default applies.
TUNABLE = ("epochs", "learning_rate", "batch_size")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    algorithm: str
    model_name: str = ""  # defaults to "<dataset>-<algorithm>"
    epochs: int | None = Field(default=None, ge=1, le=200)
    learning_rate: float | None = Field(default=None, gt=0, le=10)
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    seed: int = Field(default=DEFAULT_SEED, ge=0, le=2**31 - 1)
    checkpoint_every: int | None = Field(default=None, ge=0, le=200)  # None: the registry's default
    stall_timeout_s: int | None = Field(default=None, ge=0, le=7 * 24 * 3600)  # None: the registry's default
    team: str = "default"
    promote: bool = True  # backfills set False: they never move the champion
    replay: Literal["none", "exact", "current-code"] = "none"
    # None: the algorithm's default shape from the registry (config/algorithms.yaml).
    nodes: int | None = Field(None, ge=1, le=MAX_NODES)
    procs_per_node: int | None = Field(None, ge=1, le=MAX_PROCS_PER_NODE)
    force: bool = False  # train even when a registered version already holds this training's result


def parse_request(values: dict[str, Any]) -> RunRequest:
    try:
        return RunRequest.model_validate(values)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()]
        raise BadRequest("invalid run parameters: " + "; ".join(problems)) from None


class RunPlan(BaseModel):
    """Everything later tasks of a run need, resolved once at the start."""

    model_config = ConfigDict(frozen=True)

    run_key: str  # store-safe, deterministic id of this run
    dag_id: str
    airflow_run_id: str
    logical_date: str | None
    model_name: str
    dataset: str
    dataset_source: str
    schema_name: str
    as_of: str | None  # snapshot only partitions up to this date
    algorithm: str
    image: TrainerImage
    hyperparameters: dict[str, Any]
    seed: int
    split_seed: int
    test_fraction: float
    num_threads: int
    deadline_s: int
    # Surviving interruption; none of these changes the weights.
    retries: int = 2
    checkpoint_every: int = 1
    checkpoints_kept: int = 2
    stall_timeout_s: int = 600
    team: str
    promote: bool
    replay: str
    executor: str
    nodes: int = 1
    procs_per_node: int = 1
    # Backfills: a dataset hash pinned by a replayed manifest or an asset event,
    # the replayed model, and whether the result is a historical version.
    pinned_dataset_hash: str | None = None
    replay_of: str | None = None
    expected_weights_sha256: str | None = None
    historical: bool = False
    force: bool = False  # never reuse a registered version (steps/lifecycle/training_reuse.py)
    # A hyperparameter study's trial: which study and trial it is, and how it reports to the pruner.
    study: StudyLineage | None = None
    pruning: PruningSpec | None = None

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_key)

    @property
    def output_prefix(self) -> str:
        return self.layout.train.prefix

    @property
    def shape(self) -> TrainingShape:
        return TrainingShape(nodes=self.nodes, procs_per_node=self.procs_per_node)


def run_key_for(dag_id: str, run_id: str) -> str:
    """Store-safe and stable across task retries; the hash keeps sanitized ids distinct."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{dag_id}-{run_id}").strip("-.")[:80]
    digest = sha256_bytes(f"{dag_id}|{run_id}".encode())[:10]
    return f"{safe}-{digest}"


def catalog_pair(catalog: Catalog, dataset_name: str, algorithm_name: str) -> tuple[DatasetEntry, AlgorithmEntry]:
    """The catalog entries a request names; unknown names and a schema mismatch are refused in the
    same words wherever a request is checked (the plan task, `trainyard run`, `trainyard submit`)."""
    dataset = catalog.dataset(dataset_name)
    algorithm = catalog.algorithm(algorithm_name)
    if algorithm.schema_name != dataset.schema_name:
        fits = sorted(a.name for a in catalog.algorithms.values() if a.schema_name == dataset.schema_name)
        raise BadRequest(
            f"algorithm {algorithm.name!r} trains on {algorithm.schema_name!r} data, but dataset "
            f"{dataset.name!r} has schema {dataset.schema_name!r}; algorithms for it: {', '.join(fits) or 'none'}"
        )
    return dataset, algorithm


def check_request(request: RunRequest, catalog: Catalog) -> tuple[DatasetEntry, AlgorithmEntry, str, dict[str, Any]]:
    """Everything about a request that can be refused from the catalog alone (no Airflow, no I/O
    beyond the catalog files): names, schema fit, model name, and the hyperparameters it will run
    with (the registry's defaults, overridden by what the request sets) within BOUNDS."""
    dataset, algorithm = catalog_pair(catalog, request.dataset, request.algorithm)
    model_name = validate_name("model", request.model_name or f"{request.dataset}-{request.algorithm}")
    hyperparameters = {**algorithm.defaults}
    hyperparameters.update({k: getattr(request, k) for k in TUNABLE if getattr(request, k) is not None})
    missing = [k for k in TUNABLE if k not in hyperparameters]
    if missing:
        raise BadRequest(f"algorithm {algorithm.name!r} has no default {', '.join(missing)} in the registry; set it")
    try:
        RunRequest.model_validate({"dataset": dataset.name, "algorithm": algorithm.name,
                                   **{k: hyperparameters[k] for k in TUNABLE}})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"algorithm {algorithm.name!r}'s registry defaults are out of bounds: {problems}") from None
    return dataset, algorithm, model_name, hyperparameters


def plan_run(
    request: RunRequest,
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
) -> RunPlan:
    """Resolve names, defaults and the trainer image. `image_resolver(reference) -> digest`
    is used for container and Kubernetes executors; it runs once per run, here."""
    dataset, algorithm, model_name, hyperparameters = check_request(request, catalog)
    shape = TrainingShape(
        nodes=request.nodes or algorithm.shape.nodes,
        procs_per_node=request.procs_per_node or algorithm.shape.procs_per_node,
    )
    try:
        refuse_unsupported_shape(executor, shape)
    except ShapeUnsupported as exc:
        raise BadRequest(str(exc)) from None
    image_version = algorithm.image_on(logical_date) if logical_date else algorithm.current_image()
    if executor == "subprocess":
        image = TrainerImage(
            algorithm=algorithm.name,
            image_reference=image_version.image,
            code_sha256=trainer_code_sha256(Path(algorithm.entrypoint).parent),
            entrypoint=algorithm.entrypoint,
        )
    else:
        digest = image_version.image_digest or (image_resolver(image_version.image) if image_resolver else None)
        if not digest:
            raise BadRequest(f"cannot pin {image_version.image} to a digest; no resolver configured")
        image = TrainerImage(
            algorithm=algorithm.name,
            image_reference=image_version.image,
            image_digest=digest,
            entrypoint=algorithm.entrypoint,
        )
    return RunPlan(
        run_key=run_key_for(dag_id, airflow_run_id),
        dag_id=dag_id,
        airflow_run_id=airflow_run_id,
        logical_date=logical_date.isoformat() if logical_date else None,
        model_name=model_name,
        dataset=dataset.name,
        dataset_source=str(dataset.source),
        schema_name=dataset.schema_name,
        as_of=logical_date.isoformat() if logical_date else None,
        algorithm=algorithm.name,
        image=image,
        hyperparameters=hyperparameters,
        seed=request.seed,
        split_seed=split_seed,
        test_fraction=test_fraction,
        num_threads=num_threads,
        deadline_s=algorithm.deadline_s,
        retries=algorithm.retries,
        checkpoint_every=algorithm.checkpoint_every if request.checkpoint_every is None else request.checkpoint_every,
        checkpoints_kept=algorithm.checkpoints_kept,
        stall_timeout_s=algorithm.stall_timeout_s if request.stall_timeout_s is None else request.stall_timeout_s,
        team=request.team,
        promote=request.promote,
        replay=request.replay,
        executor=executor,
        nodes=shape.nodes,
        procs_per_node=shape.procs_per_node,
        force=request.force,
    )
