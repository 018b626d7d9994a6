"""A study's trials as TensorBoard event sources, for `trainyard tensorboard --study`: each trial is an
ordinary run with its own event file, named after its number, status and parameters so trials can be
told apart side by side. Trials still training (proposed in a wave, no trial record yet) show as running.
"""
from __future__ import annotations

from typing import Any

from steps.lifecycle.run_refs import has_training, run_event_source
from steps.monitoring.tensorboard_logdir import EventSource
from steps.store import ArtifactStore, ObjectNotFound
from steps.store.run_layout import StudyLayout
from steps.tuning.study_record import trial_records
from steps.tuning.study_table import param_value
from steps.tuning.waves import WaveRecord


def trial_label(number: int, status: str, params: dict[str, Any], study_id: str | None = None) -> str:
    """`trial 3 completed hash_buckets=64 learning_rate=0.05` (prefixed by the study id when several studies
    are shown together)."""
    values = " ".join(f"{name}={param_value(params[name])}" for name in sorted(params))
    label = f"trial {number} {status} {values}".rstrip()
    return f"{study_id} {label}" if study_id else label


def _proposed(store: ArtifactStore, layout: StudyLayout) -> dict[int, dict[str, Any]]:
    """Every trial a wave proposed so far: trial number -> its parameters."""
    proposed: dict[int, dict[str, Any]] = {}
    for key in store.list_keys(layout.waves_prefix):
        for trial in WaveRecord.model_validate_json(store.get_bytes(key)).trials:
            proposed[trial.number] = trial.params
    return proposed


def study_event_sources(store: ArtifactStore, study_id: str, *, prefix_study_id: bool = False) -> list[EventSource]:
    """The event sources of every trial of `study_id` that has trained at least one epoch, by trial number.

    Refuses, in one line, a study the store does not hold and a study none of whose trials has events yet."""
    layout = StudyLayout(study_id)
    if not store.exists(layout.spec) and not store.exists(layout.record):
        raise ObjectNotFound(f"no study {study_id!r} in {store.location} (no {layout.spec})")
    finished = {trial.number: trial for trial in trial_records(store, layout)}
    proposed = _proposed(store, layout)
    sources = []
    for number in sorted(set(proposed) | set(finished)):
        record = finished.get(number)
        run_key = record.run_key if record else layout.trial_run_key(number)
        if not has_training(store, run_key):
            continue
        status = record.status if record else "running"
        params = record.params if record else proposed[number]
        label = trial_label(number, status, params, study_id if prefix_study_id else None)
        sources.append(run_event_source(run_key, label=label))
    if not sources:
        raise LookupError(
            f"study {study_id} has no trial with TensorBoard events yet ({len(proposed)} trials proposed, "
            f"{len(finished)} finished); try again once a trial has trained an epoch"
        )
    return sources
