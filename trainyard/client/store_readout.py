"""The store as seen from the client's machine: a running trainer's epochs, its checkpoints and resume,
and why steps failed.

The client reads the store its own settings name (TRAINYARD_STORE, TRAINYARD_MINIO_*, or the
local TRAINYARD_HOME). From a laptop that cannot reach the service's store, status says so and
shows what Airflow knows; the store is never required.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from steps.lifecycle.plan import run_key_for
from steps.lifecycle.run_progress import RunProgress, read_run_progress
from steps.lifecycle.run_status import RunStatus, read_run_status
from steps.store import ArtifactStore, StoreError, StoreSettings

# A reader polls: fail fast rather than retry the way a pipeline step does.
READ_CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 15.0


def _configured_store_settings() -> StoreSettings:
    from trainyard.settings import Settings

    return Settings.load().store


class StoreReadout:
    def __init__(self, settings: Callable[[], StoreSettings] = _configured_store_settings):
        self._settings = settings
        self._store: ArtifactStore | None = None

    def _open(self) -> ArtifactStore:
        if self._store is not None:
            return self._store
        settings = self._settings()
        if settings.backend == "local":
            from steps.store.local import LocalStore

            if not Path(settings.root).is_dir():
                raise StoreError(f"the local store {settings.root} does not exist on this machine")
            self._store = LocalStore(Path(settings.root))
        else:
            from steps.store.minio_store import MinioStore

            self._store = MinioStore(
                settings, retry_attempts=1, connect_timeout_s=READ_CONNECT_TIMEOUT_S, read_timeout_s=READ_TIMEOUT_S
            )
        return self._store

    @property
    def location(self) -> str:
        try:
            return self._open().location
        except (StoreError, ValueError) as exc:
            return f"(unavailable: {exc})"

    def progress(self, dag_id: str, run_id: str) -> tuple[RunProgress | None, str | None]:
        """The run's store records, or None and one line saying why they cannot be read from here."""
        try:
            return read_run_progress(self._open(), run_key_for(dag_id, run_id)), None
        except (StoreError, OSError, ValueError) as exc:  # ValueError: a bad TRAINYARD_* setting
            return None, f"store not reachable from here ({exc}); showing what Airflow knows"

    def run_status(self, dag_id: str, run_id: str) -> RunStatus | None:
        """What the run's steps stored, read the way `trainyard lineage` reads it (steps/lifecycle/run_status.py):
        training progress, newest checkpoint, resume, failure kinds. None where the store cannot be read
        (`progress` says why)."""
        try:
            return read_run_status(self._open(), run_key_for(dag_id, run_id))
        except (StoreError, OSError, ValueError):
            return None
