"""Resolve an image tag to its manifest digest through the OCI distribution HTTP API.

A run resolves its trainer image once and pins every later task to `repo@sha256:...`,
so a tag that moves mid-run (or before a reproduction) cannot change what is trained.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import requests

from steps.hashing import sha256_bytes

# Everything a registry may answer for a tag: multi-arch indexes and single manifests.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT_HEADER = ", ".join(MANIFEST_MEDIA_TYPES)
DEFAULT_TIMEOUT_S = 10.0

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')


class ImageResolutionError(Exception):
    """Base for every failure to turn an image reference into a digest."""


class InvalidImageReference(ImageResolutionError):
    pass


class RegistryUnreachable(ImageResolutionError):
    pass


class ManifestNotFound(ImageResolutionError):
    pass


class RegistryAuthError(ImageResolutionError):
    """The registry or its token service refused us; never carries the credentials."""


class MutableTagRefused(ImageResolutionError):
    pass


@dataclass(frozen=True)
class RegistryCredentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ImageRef:
    """An image reference; `digest` is set once resolved (or when given pinned)."""

    registry: str  # host[:port]
    repository: str  # path inside the registry, e.g. "trainyard/digits-cnn"
    tag: str | None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def is_pinned(self) -> bool:
        return self.digest is not None

    @property
    def pinned(self) -> str:
        """The immutable form a pod must use: host/repo@sha256:..."""
        if self.digest is None:
            raise ImageResolutionError(f"image {self} has no digest yet; resolve it first")
        return f"{self.name}@{self.digest}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_image_ref(reference: str) -> ImageRef:
    """Split `host[:port]/repo[:tag][@sha256:...]`; a missing tag means `latest`, as in Docker."""
    text = reference.strip()
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidImageReference(
                f"image reference {reference!r} has an invalid digest; expected sha256:<64 hex chars>"
            )
    host, slash, path = text.partition("/")
    # The registry must be explicit: a bare "python:3.11" silently meaning Docker Hub is
    # exactly the kind of ambiguity digest pinning exists to remove.
    if not slash or not ("." in host or ":" in host or host == "localhost"):
        raise InvalidImageReference(
            f"image reference {reference!r} must start with its registry host, e.g. registry.example.com/team/image:tag"
        )
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise InvalidImageReference(f"image reference {reference!r} has an invalid tag {tag!r}")
    if not _REPO_RE.match(path):
        raise InvalidImageReference(f"image reference {reference!r} has an invalid repository name {path!r}")
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry=host, repository=path, tag=tag, digest=digest)


def require_digest(reference: str | ImageRef, production: bool) -> ImageRef:
    """In production an image must be registered by digest; a tag can be moved under us."""
    ref = reference if isinstance(reference, ImageRef) else parse_image_ref(reference)
    if production and not ref.is_pinned:
        raise MutableTagRefused(
            f"image {ref} is a mutable tag; production mode requires a digest-pinned image "
            f"({ref.name}@sha256:...). Resolve it once and register the pinned reference."
        )
    return ref


def resolve_digest(
    reference: str | ImageRef,
    *,
    credentials: RegistryCredentials | None = None,
    insecure: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    session: requests.Session | None = None,
) -> ImageRef:
    """Ask the registry which manifest digest the tag points at right now.

    `insecure` speaks plain http (a loopback test registry); otherwise https.
    An already-pinned reference is returned unchanged without touching the network.
    """
    ref = reference if isinstance(reference, ImageRef) else parse_image_ref(reference)
    if ref.is_pinned:
        return ref
    client = _RegistryClient(ref, credentials, "http" if insecure else "https", timeout_s, session)
    try:
        return replace(ref, digest=client.manifest_digest())
    finally:
        client.close()


def resolve_digest_by_head(
    reference: str | ImageRef,
    *,
    credentials: RegistryCredentials | None = None,
    insecure: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ImageRef:
    """Ask the registry about a reference even when it is pinned: a replay must know its
    digest still exists. Raises ManifestNotFound naming the digest when it does not."""
    ref = reference if isinstance(reference, ImageRef) else parse_image_ref(reference)
    client = _RegistryClient(ref, credentials, "http" if insecure else "https", timeout_s, None)
    try:
        return replace(ref, digest=client.manifest_digest())
    finally:
        client.close()


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _RegistryClient:
    def __init__(
        self,
        ref: ImageRef,
        credentials: RegistryCredentials | None,
        scheme: str,
        timeout_s: float,
        session: requests.Session | None,
    ) -> None:
        self.ref = ref
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.owns_session = session is None
        self.session = session or requests.Session()
        self.insecure = scheme == "http"
        # A pinned reference asks for its digest (does it still exist?), else the tag.
        self.url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{ref.digest or ref.tag}"
        self.auth_header: str | None = None

    def close(self) -> None:
        if self.owns_session:
            self.session.close()

    def manifest_digest(self) -> str:
        response = self._manifest("HEAD")
        digest = response.headers.get("Docker-Content-Digest")
        if digest is None:
            # Some registries omit the header on HEAD; the digest is then that of the bytes.
            response = self._manifest("GET")
            digest = response.headers.get("Docker-Content-Digest") or f"sha256:{sha256_bytes(response.content)}"
        if not _DIGEST_RE.match(digest):
            raise ImageResolutionError(
                f"registry {self.ref.registry} returned an unsupported digest {digest!r} for {self._what}"
            )
        return digest

    @property
    def _what(self) -> str:
        if self.ref.digest:
            return f"{self.ref.repository}@{self.ref.digest}"
        return f"{self.ref.repository}:{self.ref.tag}"

    def _manifest(self, method: str) -> requests.Response:
        response = self._send(method)
        if response.status_code == 401 and self.auth_header is None:
            self.auth_header = self._authorize(response.headers.get("WWW-Authenticate", ""))
            response = self._send(method)
        if response.status_code in (401, 403):
            raise RegistryAuthError(
                f"registry {self.ref.registry} refused access to {self._what} (HTTP {response.status_code})"
            )
        if response.status_code == 404:
            raise ManifestNotFound(f"image {self._what} not found on registry {self.ref.registry}")
        if not response.ok:
            raise ImageResolutionError(
                f"registry {self.ref.registry} answered HTTP {response.status_code} for {self._what}"
            )
        return response

    def _send(self, method: str, url: str | None = None, **kwargs) -> requests.Response:
        headers = {"Accept": ACCEPT_HEADER}
        if self.auth_header and url is None:
            headers["Authorization"] = self.auth_header
        target = url or self.url
        try:
            return self.session.request(
                method, target, headers=headers, timeout=self.timeout_s, allow_redirects=True, **kwargs
            )
        except requests.RequestException as exc:
            host = urlsplit(target).netloc
            raise RegistryUnreachable(
                f"registry {host} is unreachable while resolving {self._what}: {type(exc).__name__}"
            ) from None

    def _authorize(self, challenge: str) -> str:
        """Answer a 401 challenge: Bearer (token service) or Basic; return the header to retry with."""
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM_RE.findall(params_text))
        if scheme.lower() == "basic":
            if self.credentials is None:
                raise RegistryAuthError(f"registry {self.ref.registry} requires credentials for {self._what}")
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        if scheme.lower() != "bearer" or "realm" not in params:
            raise RegistryAuthError(
                f"registry {self.ref.registry} asked for unsupported authentication {scheme or '(none)'!r}"
            )
        query = {"scope": params.get("scope", f"repository:{self.ref.repository}:pull")}
        if "service" in params:
            query["service"] = params["service"]
        realm = urlsplit(params["realm"])
        if self.credentials and realm.scheme != "https" and not self.insecure and realm.hostname not in _LOOPBACK:
            raise RegistryAuthError(
                f"registry {self.ref.registry} names a plain-http token service ({realm.netloc}); "
                "refusing to send credentials there"
            )
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        response = self._send("GET", params["realm"], params=query, auth=auth)
        if response.status_code in (401, 403):
            given = "refused the credentials" if self.credentials else "requires credentials, none were given,"
            raise RegistryAuthError(
                f"token service for registry {self.ref.registry} {given} for {self._what} (HTTP {response.status_code})"
            )
        if not response.ok:
            raise ImageResolutionError(
                f"token service for registry {self.ref.registry} answered HTTP {response.status_code}"
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if not token:
            raise ImageResolutionError(f"token service for registry {self.ref.registry} returned no token")
        return f"Bearer {token}"
