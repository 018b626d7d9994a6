"""Key and name rules shared by every backend, so nothing can escape the store's root."""
from __future__ import annotations

import re

from steps.store.errors import StoreError

# Top-level areas. The local store maps them to directories, MinIO to buckets.
AREAS = ("datasets", "runs", "models")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._=@+-]+$")


class InvalidName(StoreError, ValueError):
    """A user-supplied name or key would be unsafe as a store path."""


def validate_name(kind: str, name: str) -> str:
    """A dataset or model name: one lowercase path segment, never '..' or absolute."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidName(f"{kind} name must not be empty or blank")
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name:
        raise InvalidName(
            f"{kind} name {name!r} would escape the store root; use letters, digits, '.', '_' or '-'"
        )
    if not _NAME_RE.match(name):
        raise InvalidName(
            f"{kind} name {name!r} is not allowed; use 1-63 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_key(key: str) -> str:
    """A store key: '<area>/<segment>/...'; relative, no '..', no empty segments."""
    if not isinstance(key, str) or not key:
        raise InvalidName("store key must be a non-empty string")
    if key.startswith("/") or "\\" in key:
        raise InvalidName(f"store key {key!r} must be relative to the store root")
    segments = key.split("/")
    if segments[0] not in AREAS:
        raise InvalidName(f"store key {key!r} must start with one of: {', '.join(AREAS)}")
    if len(segments) < 2:
        raise InvalidName(f"store key {key!r} names an area, not an object")
    for segment in segments[1:]:
        if segment in ("", ".", ".."):
            raise InvalidName(f"store key {key!r} has an empty, '.' or '..' segment")
        if not _SEGMENT_RE.match(segment):
            raise InvalidName(f"store key {key!r} has an unsupported character in {segment!r}")
    return key
