"""What a run will do, read before it starts: whether its snapshot still needs validating and
whether it will train. The embedded runner (`trainyard run`) uses it to warm up only the
interpreters the run will need (steps/warm/). It is a forecast: the steps decide for themselves
when they run, and a wrong forecast costs at most the start-up it would have saved."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.data.schemas import get_schema
from steps.data.snapshot import build_snapshot
from steps.data.stat_cache import StatCache
from steps.data.validation_cache import stored_validation, validation_key
from steps.lifecycle.plan import RunPlan
from steps.lifecycle.training_reuse import reusable_version
from steps.store import ArtifactStore


class RunPreview(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset_hash: str
    will_validate: bool
    will_train: bool


def preview_run(store: ArtifactStore, plan: RunPlan, cache: StatCache | None = None) -> RunPreview:
    """Hashes the dataset as the snapshot step will (through the same stat cache, so the step then
    re-reads nothing) and looks up the stored validation and the registered training identity."""
    if plan.pinned_dataset_hash:
        dataset_hash = plan.pinned_dataset_hash
    else:
        as_of = date.fromisoformat(plan.as_of) if plan.as_of else None
        dataset_hash = build_snapshot(plan.dataset, Path(plan.dataset_source), as_of=as_of, cache=cache)[0].dataset_hash
    key = validation_key(plan.dataset, dataset_hash, get_schema(plan.schema_name))
    return RunPreview(
        dataset_hash=dataset_hash,
        will_validate=stored_validation(store, key) is None,
        will_train=reusable_version(store, plan, dataset_hash) is None,
    )
