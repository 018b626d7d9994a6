"""Service settings: embedded defaults, overridden by a TOML config file, then by env.

Order: built-in defaults < $TRAINYARD_CONFIG (or ./trainyard.toml) < TRAINYARD_* env vars.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from steps.project_root import PROJECT_ROOT
from steps.store import StoreSettings
from steps.store import settings as store_env
from steps.training.launch import DEFAULT_RENDEZVOUS_TIMEOUT_S

EXECUTORS = ("subprocess", "container", "kubernetes")
GATE_METRICS = ("macro_f1", "accuracy")  # higher is better; the gate relies on it


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    store: StoreSettings = field(default_factory=StoreSettings)
    executor: str = "subprocess"
    production: bool = False  # refuse mutable image tags
    num_threads: int = 1
    split_seed: int = 20260101
    test_fraction: float = 0.2
    primary_metric: str = "macro_f1"
    min_improvement: float = 0.0
    datasets_catalog: Path = PROJECT_ROOT / "config" / "datasets.yaml"
    algorithms_catalog: Path = PROJECT_ROOT / "config" / "algorithms.yaml"
    registry_insecure: bool = True  # plain http for loopback registries
    container_runtime: str = "podman"
    retry_delay_s: int = 30  # between tries of the train task (read when DAGs are parsed)
    # How long the nodes of a multi-node run wait for each other before the run fails.
    rendezvous_timeout_s: int = DEFAULT_RENDEZVOUS_TIMEOUT_S

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        config_path = Path(env.get("TRAINYARD_CONFIG", "trainyard.toml"))
        file_values: dict[str, Any] = {}
        if config_path.is_file():
            try:
                file_values = tomllib.loads(config_path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"config file {config_path} is not valid TOML: {exc}") from None
        elif "TRAINYARD_CONFIG" in env:
            raise SettingsError(f"TRAINYARD_CONFIG={config_path} does not exist")
        # The [store] table speaks the same names as the env vars, which win.
        store_table = file_values.get("store", {})
        store_values = {
            store_env.ENV_BACKEND: store_table.get("backend"),
            store_env.ENV_ROOT: store_table.get("root"),
            store_env.ENV_MINIO_ENDPOINT: store_table.get("minio_endpoint"),
            store_env.ENV_MINIO_SECURE: None if "minio_secure" not in store_table else str(store_table["minio_secure"]),
            store_env.ENV_MINIO_BUCKET_PREFIX: store_table.get("bucket_prefix"),
            store_env.ENV_MINIO_OBJECT_LOCK_DAYS: None if "object_lock_days" not in store_table else str(store_table["object_lock_days"]),
        }
        merged_store_env = {k: v for k, v in store_values.items() if v is not None}
        merged_store_env.update({k: v for k, v in env.items() if k.startswith("TRAINYARD_")})
        settings = cls(store=StoreSettings.from_env(merged_store_env))
        training = file_values.get("training", {})
        executor = file_values.get("executor", {})
        updates: dict[str, Any] = {}
        for key in ("num_threads", "split_seed", "test_fraction", "primary_metric", "min_improvement", "retry_delay_s"):
            if key in training:
                updates[key] = training[key]
        if "kind" in executor:
            updates["executor"] = executor["kind"]
        for key in ("production", "container_runtime", "registry_insecure", "rendezvous_timeout_s"):
            if key in executor:
                updates[key] = executor[key]
        env_map: dict[str, tuple[str, Callable[[str], Any]]] = {
            "TRAINYARD_EXECUTOR": ("executor", str),
            "TRAINYARD_PRODUCTION": ("production", lambda v: v.lower() in ("1", "true", "yes")),
            "TRAINYARD_NUM_THREADS": ("num_threads", int),
            "TRAINYARD_SPLIT_SEED": ("split_seed", int),
            "TRAINYARD_DATASETS_CATALOG": ("datasets_catalog", Path),
            "TRAINYARD_ALGORITHMS_CATALOG": ("algorithms_catalog", Path),
            "TRAINYARD_CONTAINER_RUNTIME": ("container_runtime", str),
            "TRAINYARD_RETRY_DELAY_S": ("retry_delay_s", int),
            "TRAINYARD_RENDEZVOUS_TIMEOUT_S": ("rendezvous_timeout_s", int),
        }
        for var, (attr, convert) in env_map.items():
            if var in env:
                try:
                    updates[attr] = convert(env[var])
                except ValueError:
                    raise SettingsError(f"{var}={env[var]!r} is not a valid {attr}") from None
        settings = replace(settings, **updates)
        if settings.executor not in EXECUTORS:
            raise SettingsError(f"executor {settings.executor!r} is unknown; use one of: {', '.join(EXECUTORS)}")
        if settings.primary_metric not in GATE_METRICS:
            raise SettingsError(
                f"primary_metric {settings.primary_metric!r} cannot gate promotion; use one of: {', '.join(GATE_METRICS)}"
            )
        if settings.num_threads < 1:
            raise SettingsError("num_threads must be at least 1")
        if settings.retry_delay_s < 0:
            raise SettingsError("retry_delay_s must be 0 or more")
        if settings.rendezvous_timeout_s < 1:
            raise SettingsError("rendezvous_timeout_s must be at least 1")
        return settings
