"""Store settings: which backend, where, with which credentials; the same settings travel to the
trainer as environment variables (docs/trainer-contract.md)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from steps.store.errors import StoreError

# Environment variables that select and configure the store, for the service and
# the trainer alike (docs/trainer-contract.md, docs/storage.md).
ENV_BACKEND = "TRAINYARD_STORE"
ENV_ROOT = "TRAINYARD_STORE_ROOT"
ENV_MINIO_ENDPOINT = "TRAINYARD_MINIO_ENDPOINT"
ENV_MINIO_SECURE = "TRAINYARD_MINIO_SECURE"
ENV_MINIO_ACCESS_KEY = "TRAINYARD_MINIO_ACCESS_KEY"
ENV_MINIO_SECRET_KEY = "TRAINYARD_MINIO_SECRET_KEY"
ENV_MINIO_BUCKET_PREFIX = "TRAINYARD_MINIO_BUCKET_PREFIX"
ENV_MINIO_OBJECT_LOCK_DAYS = "TRAINYARD_MINIO_OBJECT_LOCK_DAYS"
ENV_MINIO_OBJECT_LOCK_MODE = "TRAINYARD_MINIO_OBJECT_LOCK_MODE"


def trainyard_home() -> Path:
    """Where embedded state lives (store, stat cache, Airflow home): $TRAINYARD_HOME."""
    return Path(os.environ.get("TRAINYARD_HOME", os.path.expanduser("~/.local/share/trainyard")))


@dataclass(frozen=True)
class StoreSettings:
    backend: str = "local"  # "local" | "minio"
    root: str = field(default_factory=lambda: str(trainyard_home() / "store"))
    minio_endpoint: str = ""
    minio_secure: bool = False
    minio_access_key: str = field(default="", repr=False)
    minio_secret_key: str = field(default="", repr=False)
    bucket_prefix: str = "trainyard"
    object_lock_days: int = 0  # 0 = object-lock retention off
    object_lock_mode: str = "GOVERNANCE"  # or "COMPLIANCE"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        env = os.environ if env is None else env
        backend = env.get(ENV_BACKEND, "local").strip().lower() or "local"
        if backend not in ("local", "minio"):
            raise StoreError(f"{ENV_BACKEND}={backend!r} is not a store backend; use 'local' or 'minio'")
        return cls(
            backend=backend,
            root=env.get(ENV_ROOT, str(trainyard_home() / "store")),
            minio_endpoint=env.get(ENV_MINIO_ENDPOINT, ""),
            minio_secure=env.get(ENV_MINIO_SECURE, "false").lower() in ("1", "true", "yes"),
            minio_access_key=env.get(ENV_MINIO_ACCESS_KEY, ""),
            minio_secret_key=env.get(ENV_MINIO_SECRET_KEY, ""),
            bucket_prefix=env.get(ENV_MINIO_BUCKET_PREFIX, "trainyard"),
            object_lock_days=int(env.get(ENV_MINIO_OBJECT_LOCK_DAYS, "0") or 0),
            object_lock_mode=env.get(ENV_MINIO_OBJECT_LOCK_MODE, "GOVERNANCE").strip().upper() or "GOVERNANCE",
        )

    def public_env(self) -> dict[str, str]:
        """The non-secret env that tells a trainer where the store is."""
        env = {ENV_BACKEND: self.backend}
        if self.backend == "local":
            env[ENV_ROOT] = self.root
        else:
            env[ENV_MINIO_ENDPOINT] = self.minio_endpoint
            env[ENV_MINIO_SECURE] = "true" if self.minio_secure else "false"
            env[ENV_MINIO_BUCKET_PREFIX] = self.bucket_prefix
        return env

    def secret_env(self) -> dict[str, str]:
        """Credentials; in Kubernetes these come from a Secret, never inline."""
        if self.backend != "minio":
            return {}
        return {ENV_MINIO_ACCESS_KEY: self.minio_access_key, ENV_MINIO_SECRET_KEY: self.minio_secret_key}
