"""Read the `minio_default` Airflow connection into StoreSettings, when the store is MinIO."""
from __future__ import annotations

from dataclasses import replace

from steps.store import StoreSettings

MINIO_CONN_ID = "minio_default"


def store_settings_from_connection(base: StoreSettings, conn_id: str = MINIO_CONN_ID) -> StoreSettings:
    """Env-provided credentials win; otherwise fill endpoint and keys from the connection."""
    if base.backend != "minio" or (base.minio_endpoint and base.minio_access_key and base.minio_secret_key):
        return base
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson or {}
    host = conn.host or ""
    endpoint = f"{host}:{conn.port}" if conn.port else host
    return replace(
        base,
        minio_endpoint=base.minio_endpoint or endpoint,
        minio_access_key=base.minio_access_key or (conn.login or ""),
        minio_secret_key=base.minio_secret_key or (conn.password or ""),
        minio_secure=bool(extra.get("secure", base.minio_secure)),
    )
