"""Read side of the model registry: versions, manifests, aliases, MODEL@VERSION refs."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from steps.catalog.near_miss import did_you_mean
from steps.hashing import canonical_json, sha256_bytes
from steps.lifecycle.manifest import ModelManifest
from steps.store import ArtifactStore, IntegrityError, ObjectChanged, ObjectExists, ObjectNotFound, validate_name

CHAMPION = "champion"


class ModelNotFound(LookupError):
    def __str__(self) -> str:
        return str(self.args[0])


class AliasMoved(RuntimeError):
    """Another run moved the alias between this run's read and its write; nothing was written."""

    def __str__(self) -> str:
        return str(self.args[0])


class AliasRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    alias: str
    version: int
    set_at: str
    run_key: str
    reason: str


def versions_prefix(model: str) -> str:
    return f"models/{validate_name('model', model)}/versions/"


def version_key(model: str, version: int, name: str) -> str:
    return f"{versions_prefix(model)}{version}/{name}"


def alias_key(model: str, alias: str) -> str:
    return f"models/{validate_name('model', model)}/aliases/{alias}.json"


def list_models(store: ArtifactStore) -> list[str]:
    names = set()
    for key in store.list_keys("models/"):
        parts = key.split("/")
        if len(parts) >= 5 and parts[2] == "versions" and parts[4] == "manifest.json":
            names.add(parts[1])
    return sorted(names)


def registered_versions(store: ArtifactStore, model: str) -> list[int]:
    """Versions with a manifest; a version without one does not exist."""
    found = set()
    for key in store.list_keys(versions_prefix(model)):
        rest = key[len(versions_prefix(model)) :].split("/")
        if len(rest) == 2 and rest[1] == "manifest.json" and rest[0].isdigit():
            found.add(int(rest[0]))
    return sorted(found)


def claimed_versions(store: ArtifactStore, model: str) -> dict[int, str]:
    """version -> run_key of every claim, manifest or not."""
    claims = {}
    for key in store.list_keys(versions_prefix(model)):
        rest = key[len(versions_prefix(model)) :].split("/")
        if len(rest) == 2 and rest[1] == "claim.json" and rest[0].isdigit():
            claims[int(rest[0])] = json.loads(store.get_bytes(key))["run_key"]
    return claims


def no_such_model(store: ArtifactStore, model: str) -> ModelNotFound:
    known = list_models(store)
    return ModelNotFound(
        f"no such model {model!r}{did_you_mean(model, known)}; registered models: {', '.join(known) or 'none'} "
        "(a model is named <dataset>-<algorithm> unless the run chose a name)"
    )


def load_manifest(store: ArtifactStore, model: str, version: int) -> ModelManifest:
    try:
        data = store.get_bytes(version_key(model, version, "manifest.json"))
    except ObjectNotFound:
        known = registered_versions(store, model)
        if not known:
            raise no_such_model(store, model) from None
        raise ModelNotFound(f"model {model!r} has no version {version}; registered versions: {known}") from None
    try:
        return ModelManifest.model_validate_json(data)
    except ValidationError as err:
        raise IntegrityError(
            f"manifest of {model}@{version} does not parse as a manifest ({err.error_count()} problems); "
            f"run `trainyard verify {model}@{version}`"
        ) from None


def read_alias_entry(store: ArtifactStore, model: str, alias: str = CHAMPION) -> tuple[AliasRecord | None, str | None]:
    """The alias record and the sha256 of its stored bytes: what a later set_alias must still find there."""
    try:
        data = store.get_bytes(alias_key(model, alias))
    except ObjectNotFound:
        return None, None
    return AliasRecord.model_validate_json(data), sha256_bytes(data)


def read_alias(store: ArtifactStore, model: str, alias: str = CHAMPION) -> AliasRecord | None:
    return read_alias_entry(store, model, alias)[0]


def set_alias(
    store: ArtifactStore, model: str, alias: str, version: int, run_key: str, reason: str, *, expected_sha256: str | None
) -> AliasRecord:
    """Move the alias with a compare-and-swap: only if it still holds what read_alias_entry returned
    as expected_sha256 (None: only if it does not exist yet). Raises AliasMoved otherwise."""
    record = AliasRecord(
        alias=alias, version=version, set_at=datetime.now(UTC).isoformat(), run_key=run_key, reason=reason
    )
    try:
        store.compare_and_swap(alias_key(model, alias), canonical_json(record.model_dump()), expected_sha256=expected_sha256)
    except ObjectChanged:
        now = read_alias(store, model, alias)
        holder = f"v{now.version} (run {now.run_key})" if now else "nothing"
        raise AliasMoved(
            f"{alias} of {model} was moved to {holder} after this run read it; v{version} was not made {alias}"
        ) from None
    record_alias_history(store, model, record)
    return record


def record_alias_history(store: ArtifactStore, model: str, record: AliasRecord) -> None:
    """One create-only line per alias move; writing the same move again (a retry) is a no-op."""
    stamp = record.set_at.replace(":", "").replace("+", "Z")
    history_key = f"models/{model}/aliases/history/{stamp}-{record.alias}-{record.version}.json"
    try:
        store.put_bytes(history_key, canonical_json(record.model_dump()), if_absent=True)
    except ObjectExists:
        pass


def alias_history(store: ArtifactStore, model: str) -> list[AliasRecord]:
    prefix = f"models/{validate_name('model', model)}/aliases/history/"
    return [AliasRecord.model_validate_json(store.get_bytes(k)) for k in store.list_keys(prefix)]


def parse_model_ref(ref: str) -> tuple[str, int | str]:
    """'digits-digits-cnn@3' -> (name, 3); '@champion' or no '@' resolves an alias."""
    name, _, version = ref.partition("@")
    validate_name("model", name)
    if not version:
        return name, CHAMPION
    if version.isdigit():
        return name, int(version)
    return name, version


def resolve_model_ref(store: ArtifactStore, ref: str) -> ModelManifest:
    name, version = parse_model_ref(ref)
    if isinstance(version, str):
        alias = read_alias(store, name, version)
        if alias is None:
            versions = registered_versions(store, name)
            if not versions:
                raise no_such_model(store, name)
            raise ModelNotFound(
                f"model {name!r} has no {version!r} alias; registered versions: {versions} (name one as {name}@N)"
            )
        version = alias.version
    return load_manifest(store, name, version)
