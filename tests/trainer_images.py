"""Pytest fixture: the trainer images, built by scripts/build-images.sh (cached after the first build
on a machine), pushed to this session's registry and registered in a MinIO store. One build and push
per session, shared by every container test (`registered_images`)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from steps.images.image_digest import resolve_digest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = ("digits-cnn", "intent-classification")


def _build_push_and_register(registry_host: str, store_env: dict[str, str]) -> dict[str, str]:
    """Run scripts/build-images.sh; algorithm -> pinned ref."""
    done = subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "build-images.sh"), "--registry", registry_host],
        cwd=PROJECT_ROOT, env={**os.environ, **store_env}, capture_output=True, text=True, timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert store_env["TRAINYARD_MINIO_SECRET_KEY"] not in done.stderr + done.stdout
    pinned = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert set(pinned) == set(ALGORITHMS)
    return pinned


@pytest.fixture(scope="session")
def registered_images(oci_registry, minio_server):
    from tests.minio_server import unique_bucket_prefix

    settings = minio_server.settings(bucket_prefix=unique_bucket_prefix())
    env = {
        "TRAINYARD_STORE": "minio",
        "TRAINYARD_MINIO_ENDPOINT": settings.minio_endpoint,
        "TRAINYARD_MINIO_SECURE": "false",
        "TRAINYARD_MINIO_ACCESS_KEY": settings.minio_access_key,
        "TRAINYARD_MINIO_SECRET_KEY": settings.minio_secret_key,
        "TRAINYARD_MINIO_BUCKET_PREFIX": settings.bucket_prefix,
    }
    pinned = _build_push_and_register(oci_registry.host, env)
    for reference in pinned.values():  # the registry serves the digest that was registered
        repository, digest = reference.split("@")
        assert resolve_digest(f"{repository}:1.0.0", insecure=True).digest == digest
    yield settings, env, pinned
    _forget_images_pulled_from(oci_registry.host)


def _forget_images_pulled_from(registry_host: str) -> None:
    """The executor pulls from this session's registry; keep only images known by other names too."""
    env = {**os.environ, "CONTAINERS_CONF": str(PROJECT_ROOT / "images" / "containers.conf")}
    listed = subprocess.run(["podman", "images", "--format", "json"], env=env, capture_output=True, text=True)
    for image in json.loads(listed.stdout or "[]"):
        names = image.get("Names") or []
        if names and all(name.startswith(registry_host + "/") for name in names):
            for name in names:  # removing the last name removes the image
                subprocess.run(["podman", "rmi", name], env=env, capture_output=True)
