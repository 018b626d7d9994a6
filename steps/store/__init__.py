"""The one storage interface every step and trainer reads and writes through (local directory, MinIO),
and the layout of what a run stores. May import steps.hashing only."""
from steps.store.base import ArtifactStore, StoredObject
from steps.store.errors import (
    CorruptContent,
    IntegrityError,
    ObjectChanged,
    ObjectExists,
    ObjectNotFound,
    StoreAuthError,
    StoreError,
    StoreUnavailable,
)
from steps.store.factory import open_store
from steps.store.keys import AREAS, validate_key, validate_name
from steps.store.settings import StoreSettings

__all__ = [
    "AREAS",
    "ArtifactStore",
    "CorruptContent",
    "IntegrityError",
    "ObjectChanged",
    "ObjectExists",
    "ObjectNotFound",
    "StoreAuthError",
    "StoreError",
    "StoreSettings",
    "StoreUnavailable",
    "StoredObject",
    "open_store",
    "validate_key",
    "validate_name",
]
