"""The complete environment a trainer sees, identical for every executor."""
from __future__ import annotations

from steps.store import StoreSettings
from steps.training.contract import TrainingJob


def trainer_public_env(job: TrainingJob, store: StoreSettings) -> dict[str, str]:
    """Everything but credentials: safe to put in a pod spec, a log or a manifest."""
    return {**job.to_env(), **store.public_env()}


def trainer_secret_env(store: StoreSettings) -> dict[str, str]:
    """Credentials. Kubernetes gets them from a Secret (secretKeyRef), never inline."""
    return store.secret_env()


def redact(text: str, secrets: dict[str, str]) -> str:
    for value in secrets.values():
        if value:
            text = text.replace(value, "***")
    return text
