"""What a task needs from its surroundings: settings, store, catalog and run identity."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from steps.catalog.catalog import Catalog
from steps.store import ArtifactStore, open_store
from trainyard.settings import Settings


def load_settings() -> Settings:
    settings = Settings.load()
    from operators.connections import store_settings_from_connection

    store = store_settings_from_connection(settings.store)
    if store is not settings.store:
        from dataclasses import replace

        settings = replace(settings, store=store)
    return settings


def open_artifact_store(settings: Settings) -> ArtifactStore:
    return open_store(settings.store)


def load_catalog(settings: Settings, store: ArtifactStore | None = None) -> Catalog:
    return Catalog.load(settings.datasets_catalog, settings.algorithms_catalog, store)


def run_identity(context: dict[str, Any]) -> tuple[str, str, date | None]:
    logical: datetime | None = context.get("logical_date")
    return context["dag"].dag_id, context["run_id"], logical.date() if logical else None


def planning_settings(settings: Settings) -> dict[str, Any]:
    """What plan_run takes from the deployment rather than from the request (plan_run's keywords)."""
    from operators.image_resolution import resolver_for

    return {
        "executor": settings.executor,
        "split_seed": settings.split_seed,
        "test_fraction": settings.test_fraction,
        "num_threads": settings.num_threads,
        "image_resolver": resolver_for(settings),
    }


def executor_for(kind: str, settings: Settings):
    from steps.executors.factory import make_executor

    return make_executor(
        kind, container_runtime=settings.container_runtime, rendezvous_timeout_s=settings.rendezvous_timeout_s
    )
