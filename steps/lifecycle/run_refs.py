"""Turn what a user types — MODEL@VERSION, MODEL (its champion), a run key, an Airflow run id — into the
runs it names, as TensorBoard event sources. `trainyard tensorboard` takes any mix; a study selector
adds one more function returning many sources."""
from __future__ import annotations

from steps.lifecycle.manifest import TENSORBOARD_EVENTS_FILE, ModelManifest
from steps.lifecycle.model_registry import (
    ModelNotFound,
    list_models,
    parse_model_ref,
    resolve_model_ref,
    version_key,
)
from steps.lifecycle.plan import run_key_for
from steps.monitoring.tensorboard_logdir import EventSource
from steps.store import ArtifactStore
from steps.store.keys import InvalidName
from steps.store.run_layout import RUNS_PREFIX, RunLayout, runs_with_events

DEFAULT_DAG_ID = "training_pipeline"


def model_event_source(manifest: ModelManifest) -> EventSource:
    label = f"{manifest.model_name}@{manifest.version}"
    if manifest.has_file(TENSORBOARD_EVENTS_FILE):
        return EventSource(
            label=label,
            events_key=version_key(manifest.model_name, manifest.version, TENSORBOARD_EVENTS_FILE),
            events_sha256=manifest.file(TENSORBOARD_EVENTS_FILE).sha256,
        )
    return EventSource(label=label, metrics_key=version_key(manifest.model_name, manifest.version, "metrics.jsonl"))


def run_event_source(run_key: str, label: str | None = None) -> EventSource:
    outputs = RunLayout(run_key).train
    return EventSource(label=label or run_key, events_key=outputs.tensorboard_events, metrics_key=outputs.metrics)


def has_training(store: ArtifactStore, run_key: str) -> bool:
    try:
        outputs = RunLayout(run_key).train
    except InvalidName:
        return False
    return store.exists(outputs.tensorboard_events) or store.exists(outputs.metrics)


def event_source_for(store: ArtifactStore, ref: str, *, dag_id: str = DEFAULT_DAG_ID) -> EventSource:
    if "@" in ref:
        return model_event_source(resolve_model_ref(store, ref))
    if has_training(store, ref):
        return run_event_source(ref)
    airflow_run = run_key_for(dag_id, ref)
    if has_training(store, airflow_run):
        return run_event_source(airflow_run, label=ref)
    try:
        name, _ = parse_model_ref(ref)
    except InvalidName:
        name = ""
    if name and name in list_models(store):
        return model_event_source(resolve_model_ref(store, ref))
    raise ModelNotFound(
        f"{ref!r} is neither a registered model (MODEL or MODEL@VERSION), nor a run key, nor a run id of "
        f"DAG {dag_id!r} with training outputs in {store.location}"
    )


def event_sources_for(store: ArtifactStore, refs: list[str], *, dag_id: str = DEFAULT_DAG_ID) -> list[EventSource]:
    sources = [event_source_for(store, ref, dag_id=dag_id) for ref in refs]
    labels = [s.label for s in sources]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"named more than once: {', '.join(duplicates)}")
    return sources


def all_run_event_sources(store: ArtifactStore) -> list[EventSource]:
    """Every run whose trainer wrote TensorBoard events, labelled by run key."""
    return [run_event_source(run_key) for run_key in runs_with_events(store.list_keys(RUNS_PREFIX))]
