"""Digest pinning against a real docker-registry on loopback (fixtures in tests/registry_server.py)."""
from __future__ import annotations

import dataclasses
import traceback

import pytest
import requests

from steps.images.image_digest import (
    ACCEPT_HEADER,
    ImageResolutionError,
    InvalidImageReference,
    ManifestNotFound,
    MutableTagRefused,
    RegistryAuthError,
    RegistryCredentials,
    RegistryUnreachable,
    require_digest,
    resolve_digest,
)
from tests.ports import unused_port


@pytest.mark.registry
def test_tag_resolves_to_the_digest_skopeo_pushed(oci_registry):
    pushed = oci_registry.push_test_image("trainyard/digits-cnn", "1.0", b"weights v1")

    ref = resolve_digest(f"{oci_registry.host}/trainyard/digits-cnn:1.0", insecure=True)

    assert ref.digest == pushed
    assert ref.tag == "1.0"
    assert ref.pinned == f"{oci_registry.host}/trainyard/digits-cnn@{pushed}"


@pytest.mark.registry
def test_moved_tag_gives_a_new_digest_while_the_first_run_keeps_the_old_one(oci_registry):
    image = f"{oci_registry.host}/trainyard/moving:latest"
    old = oci_registry.push_test_image("trainyard/moving", "latest", b"trainer build 1")
    first_run = resolve_digest(image, insecure=True)
    first_run_record = dataclasses.asdict(first_run)

    new = oci_registry.push_test_image("trainyard/moving", "latest", b"trainer build 2")
    second_run = resolve_digest(image, insecure=True)

    assert new != old
    assert second_run.digest == new
    assert first_run.digest == old
    assert dataclasses.asdict(first_run) == first_run_record
    # A reproduction of the first run uses its pinned reference: no lookup, same digest,
    # and the registry still serves that exact manifest although the tag has moved.
    assert resolve_digest(first_run.pinned, insecure=True).digest == old
    response = requests.head(
        f"{oci_registry.url}/v2/trainyard/moving/manifests/{old}", headers={"Accept": ACCEPT_HEADER}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == old


@pytest.mark.registry
def test_unknown_tag_fails_naming_repository_and_tag(oci_registry):
    oci_registry.push_test_image("trainyard/known", "1.0", b"x")

    with pytest.raises(ManifestNotFound, match=r"trainyard/known:9\.9 not found"):
        resolve_digest(f"{oci_registry.host}/trainyard/known:9.9", insecure=True)


@pytest.mark.registry
def test_unknown_repository_fails_naming_it(oci_registry):
    with pytest.raises(ManifestNotFound, match=r"trainyard/never-pushed:1\.0 not found"):
        resolve_digest(f"{oci_registry.host}/trainyard/never-pushed:1.0", insecure=True)


def test_unreachable_registry_fails_naming_the_host():
    with unused_port() as port, pytest.raises(RegistryUnreachable, match=f"registry 127.0.0.1:{port} is unreachable") as caught:
        resolve_digest(f"127.0.0.1:{port}/trainyard/digits-cnn:1.0", insecure=True, timeout_s=2)

    assert isinstance(caught.value, ImageResolutionError)


@pytest.mark.registry
def test_registry_demands_a_bearer_token_and_right_credentials_get_the_digest(oci_registry_token_auth):
    registry = oci_registry_token_auth
    pushed = registry.push_test_image("trainyard/private", "2.0", b"private trainer")
    anonymous = requests.head(f"{registry.url}/v2/trainyard/private/manifests/2.0", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer realm=")

    ref = resolve_digest(f"{registry.host}/trainyard/private:2.0", insecure=True, credentials=registry.credentials)

    assert ref.digest == pushed


@pytest.mark.registry
def test_wrong_password_is_refused_without_leaking_it(oci_registry_token_auth):
    registry = oci_registry_token_auth
    registry.push_test_image("trainyard/secret", "1.0", b"x")
    wrong = RegistryCredentials(username=registry.credentials.username, password="hunter2-wrong-password")

    with pytest.raises(RegistryAuthError, match="refused the credentials for trainyard/secret:1.0") as caught:
        resolve_digest(f"{registry.host}/trainyard/secret:1.0", insecure=True, credentials=wrong)

    shown = "".join(traceback.format_exception(caught.value)) + repr(wrong)
    assert "hunter2-wrong-password" not in shown
    assert registry.credentials.password not in shown


@pytest.mark.registry
def test_missing_credentials_are_refused(oci_registry_token_auth):
    registry = oci_registry_token_auth
    registry.push_test_image("trainyard/secret", "1.0", b"x")

    with pytest.raises(RegistryAuthError, match="requires credentials, none were given, for trainyard/secret:1.0"):
        resolve_digest(f"{registry.host}/trainyard/secret:1.0", insecure=True)


def test_production_refuses_a_mutable_tag():
    with pytest.raises(MutableTagRefused, match=r"registry\.example\.com/team/trainer:latest is a mutable tag"):
        require_digest("registry.example.com/team/trainer:latest", production=True)


def test_production_accepts_a_pinned_image_and_development_accepts_a_tag():
    digest = "sha256:" + "ab" * 32

    pinned = require_digest(f"registry.example.com/team/trainer@{digest}", production=True)
    tagged = require_digest("registry.example.com/team/trainer:dev", production=False)

    assert pinned.pinned == f"registry.example.com/team/trainer@{digest}"
    assert tagged.tag == "dev" and not tagged.is_pinned


@pytest.mark.parametrize(
    "reference, complaint",
    [
        ("python:3.11", "must start with its registry host"),
        ("registry.example.com/team/trainer@sha256:abc", "invalid digest"),
        ("registry.example.com/Team/trainer:1.0", "invalid repository name"),
    ],
)
def test_malformed_reference_is_refused_before_any_network_call(reference, complaint):
    with pytest.raises(InvalidImageReference, match=complaint):
        resolve_digest(reference)
