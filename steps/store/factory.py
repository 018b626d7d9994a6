"""Open the store backend the settings select."""
from __future__ import annotations

from pathlib import Path

from steps.store.base import ArtifactStore
from steps.store.errors import StoreError
from steps.store.settings import StoreSettings


def open_store(settings: StoreSettings | None = None) -> ArtifactStore:
    settings = settings or StoreSettings.from_env()
    if settings.backend == "local":
        from steps.store.local import LocalStore

        return LocalStore(Path(settings.root))
    if settings.backend == "minio":
        from steps.store.minio_store import MinioStore

        return MinioStore(settings, object_lock_mode=settings.object_lock_mode)
    raise StoreError(f"unknown store backend {settings.backend!r}; use 'local' or 'minio'")
