"""Verify what the store holds against what manifests pin: a model version's files, a dataset
snapshot's blobs, or everything. Each corrupt object is reported with what references it (other
versions and snapshots pinning the same content are checked too: on the local store they share it).
A snapshot blob can be restored from its source directory when the source still has the same bytes.

Used by `trainyard verify`, by `reproduce` before it retrains, by `lineage --verify` and `models`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.data.snapshot import SnapshotMismatch, blob_key, load_snapshot, snapshot_key
from steps.data.source_tree import SnapshotError, fd_path, open_source_file
from steps.hashing import sha256_stream
from steps.lifecycle.manifest import ModelManifest
from steps.lifecycle.model_registry import (
    CHAMPION,
    ModelNotFound,
    list_models,
    load_manifest,
    no_such_model,
    read_alias,
    registered_versions,
    version_key,
    versions_prefix,
)
from steps.store import AREAS, ArtifactStore, IntegrityError, StoreError
from steps.store.integrity import check_object, restore_object

SNAPSHOTS_PREFIX = "datasets/snapshots/"


@dataclass(frozen=True)
class Pin:
    """One reference to a stored object: the key, the sha256 a manifest pins it to (None: the store's
    own record is the only pin), who pins it, and for snapshot blobs which dataset file it is."""

    key: str
    sha256: str | None
    label: str
    dataset: str | None = None
    path: str | None = None


class CorruptObject(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    problem: str
    recorded_sha256: str | None
    referenced_by: list[str]
    repaired: bool = False
    repair_note: str = ""


class VerifyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    scope: str
    objects_checked: int
    bytes_checked: int
    corrupt: list[CorruptObject]

    @property
    def ok(self) -> bool:
        return all(c.repaired for c in self.corrupt)

    def lines(self) -> list[str]:
        out = []
        for c in self.corrupt:
            out.append(f"{'REPAIRED' if c.repaired else 'CORRUPT'} {c.key}: {c.problem}")
            out.append(f"  referenced by: {', '.join(c.referenced_by) or 'nothing (an unreferenced object)'}")
            if c.repair_note:
                out.append(f"  {c.repair_note}")
        bad = sum(not c.repaired for c in self.corrupt)
        verdict = "all intact" if not self.corrupt else f"{bad} corrupt" + (
            f", {len(self.corrupt) - bad} repaired" if len(self.corrupt) > bad else "")
        out.append(f"verified {self.scope}: {self.objects_checked} objects, {self.bytes_checked} bytes re-hashed; {verdict}")
        return out


class CorruptModel(IntegrityError):
    """A registered version's files (or its snapshot) no longer match its manifest."""

    def __init__(self, report: VerifyReport):
        self.report = report
        shown = "; ".join(f"{c.key} ({c.problem})" for c in report.corrupt[:3])
        more = f" and {len(report.corrupt) - 3} more" if len(report.corrupt) > 3 else ""
        super().__init__(f"{report.scope} does not match its manifest: {shown}{more}; run `trainyard verify {report.scope}`")


# -- what pins what ---------------------------------------------------------------------


def snapshot_pins(store: ArtifactStore, dataset: str, dataset_hash: str) -> list[Pin]:
    label = f"snapshot {dataset}@{dataset_hash[:12]}"
    pins = [Pin(snapshot_key(dataset, dataset_hash), None, label)]
    try:
        snapshot = load_snapshot(store, dataset, dataset_hash)
    except (StoreError, SnapshotMismatch):
        return pins  # the manifest itself is what the check reports
    return pins + [
        Pin(blob_key(f.sha256), f.sha256, f"{label} {f.path}", dataset=dataset, path=f.path) for f in snapshot.files
    ]


def model_pins(store: ArtifactStore, model: str, version: int, *, with_dataset: bool = True) -> list[Pin]:
    champion = read_alias(store, model, CHAMPION)
    label = f"{model}@{version}" + (" (champion)" if champion is not None and champion.version == version else "")
    manifest_key = version_key(model, version, "manifest.json")
    try:
        manifest = load_manifest(store, model, version)
    except (StoreError, ValueError):  # corrupt or malformed: check every file the version holds
        keys = list(store.list_keys(f"{versions_prefix(model)}{version}/"))
        return [Pin(manifest_key, None, label)] + [Pin(k, None, label) for k in keys if k != manifest_key]
    pins = [Pin(manifest_key, None, label)]
    pins += [Pin(version_key(model, version, f.name), f.sha256, f"{label} {f.name}") for f in manifest.files]
    if with_dataset:
        pins += snapshot_pins(store, manifest.dataset.name, manifest.dataset.dataset_hash)
    return pins


def _all_snapshots(store: ArtifactStore) -> list[tuple[str, str]]:
    found = []
    for key in store.list_keys(SNAPSHOTS_PREFIX):
        dataset, _, name = key[len(SNAPSHOTS_PREFIX):].partition("/")
        if name.endswith(".json") and "/" not in name:
            found.append((dataset, name[: -len(".json")]))
    return found


def _all_pins(store: ArtifactStore) -> list[Pin]:
    pins = [p for d, h in _all_snapshots(store) for p in snapshot_pins(store, d, h)]
    for model in list_models(store):
        for version in registered_versions(store, model):
            pins += model_pins(store, model, version, with_dataset=False)
    return pins


# -- checking ---------------------------------------------------------------------------


def _owner(key: str) -> str:
    """Who an object not pinned by any manifest belongs to, for the report."""
    parts = key.split("/")
    if parts[0] == "runs" and len(parts) > 2:
        return f"run {parts[1]}"
    if parts[0] == "models" and len(parts) > 2 and parts[2] == "aliases":
        return f"{parts[1]} aliases"
    if parts[0] == "models" and parts[1] == "_algorithms":
        return "the algorithm registry's image history"
    return key


def verify_pins(store: ArtifactStore, pins: list[Pin], scope: str, *, extra_keys: Iterable[str] = ()) -> VerifyReport:
    """Check each pinned key once; for content found corrupt, also check every other key any manifest
    pins to the same sha256, so one report names everything the damage reaches."""
    by_key: dict[str, list[Pin]] = {}
    for pin in pins:
        by_key.setdefault(pin.key, []).append(pin)
    for key in extra_keys:
        by_key.setdefault(key, [Pin(key, None, _owner(key))])
    checks = {key: check_object(store, key, next((p.sha256 for p in group if p.sha256), None))
              for key, group in by_key.items()}
    bad_content = {c.recorded_sha256 for c in checks.values() if not c.ok and c.recorded_sha256}
    if bad_content:
        for pin in _all_pins(store):
            if pin.key in checks:
                by_key[pin.key].append(pin)  # another manifest naming the same object
            elif pin.sha256 in bad_content:
                by_key[pin.key] = [pin]
                checks[pin.key] = check_object(store, pin.key, pin.sha256)
    corrupt = [
        CorruptObject(key=key, problem=check.problem, recorded_sha256=check.recorded_sha256,
                      referenced_by=sorted({p.label for p in by_key[key] if p.label != key}))
        for key, check in sorted(checks.items()) if not check.ok
    ]
    return VerifyReport(scope=scope, objects_checked=len(checks),
                        bytes_checked=sum(c.size_bytes for c in checks.values()), corrupt=corrupt)


def verify_model(store: ArtifactStore, model: str, version: int | None = None) -> VerifyReport:
    """One version, or every registered version of `model`, with the snapshots they were trained on."""
    versions = registered_versions(store, model)
    if not versions:
        raise no_such_model(store, model)
    if version is not None and version not in versions:
        raise ModelNotFound(f"model {model!r} has no version {version}; registered versions: {versions}")
    chosen = [version] if version is not None else versions
    pins = [p for v in chosen for p in model_pins(store, model, v)]
    return verify_pins(store, pins, f"{model}@{version}" if version is not None else model)


def verify_manifest(store: ArtifactStore, manifest: ModelManifest, *, with_dataset: bool = True) -> VerifyReport:
    pins = model_pins(store, manifest.model_name, manifest.version, with_dataset=with_dataset)
    return verify_pins(store, pins, f"{manifest.model_name}@{manifest.version}")


def resolve_snapshot_hashes(store: ArtifactStore, dataset: str, hash_prefix: str | None) -> list[str]:
    hashes = sorted(h for d, h in _all_snapshots(store) if d == dataset)
    if not hashes:
        known = sorted({d for d, _ in _all_snapshots(store)})
        raise LookupError(f"no snapshots of dataset {dataset!r}; datasets with snapshots: {', '.join(known) or 'none'}")
    if hash_prefix is None:
        return hashes
    matches = [h for h in hashes if h.startswith(hash_prefix)]
    if len(matches) != 1:
        problem = "no snapshot" if not matches else f"{len(matches)} snapshots"
        raise LookupError(f"{problem} of {dataset!r} with a hash starting {hash_prefix!r}; stored: "
                          f"{', '.join(h[:12] for h in hashes)}")
    return matches


def verify_dataset(store: ArtifactStore, dataset: str, hash_prefix: str | None = None) -> VerifyReport:
    hashes = resolve_snapshot_hashes(store, dataset, hash_prefix)
    pins = [p for h in hashes for p in snapshot_pins(store, dataset, h)]
    return verify_pins(store, pins, f"{dataset}@{hashes[0][:12]}" if hash_prefix else f"dataset {dataset}")


def verify_all(store: ArtifactStore) -> VerifyReport:
    """Every snapshot, every model version, and every other object against the store's own record."""
    keys = [k for area in AREAS for k in store.list_keys(f"{area}/")]
    return verify_pins(store, _all_pins(store), "the whole store", extra_keys=keys)


# -- repair -----------------------------------------------------------------------------


def repair_from_source(store: ArtifactStore, report: VerifyReport, source_for: Callable[[str], Path | None]) -> VerifyReport:
    """Restore corrupt or missing snapshot blobs from their dataset's source directory, where a source
    file some snapshot names still has exactly the pinned bytes. Anything else is left as it is, and
    the report says why."""
    candidates: dict[str, list[Pin]] = {}
    for dataset, dataset_hash in _all_snapshots(store):
        for pin in snapshot_pins(store, dataset, dataset_hash):
            if pin.dataset and pin.path and pin.sha256:
                candidates.setdefault(pin.key, []).append(pin)
    fixed = []
    for item in report.corrupt:
        attempt = item.model_copy(update={"repair_note": "not a snapshot blob: nothing to restore it from"})
        for pin in candidates.get(item.key, []):
            attempt = _repair_blob(store, item, pin, source_for(pin.dataset or ""))
            if attempt.repaired:
                break
        fixed.append(attempt)
    return report.model_copy(update={"corrupt": fixed})


def _repair_blob(store: ArtifactStore, item: CorruptObject, pin: Pin, source: Path | None) -> CorruptObject:
    assert pin.path is not None and pin.sha256 is not None
    if source is None:
        return item.model_copy(update={"repair_note": f"cannot repair: no source directory known for {pin.dataset!r}"})
    try:
        with open_source_file(source, Path(pin.path)) as fd:
            with open(fd_path(fd), "rb") as fh:
                actual, _ = sha256_stream(fh)
            if actual != pin.sha256:
                return item.model_copy(update={"repair_note": (
                    f"cannot repair: {source / pin.path} now hashes to {actual[:12]}, not {pin.sha256[:12]} "
                    "(the source changed since the snapshot)")})
            if store.exists(item.key):
                restore_object(store, item.key, fd_path(fd))
            else:
                store.put_file(item.key, fd_path(fd), if_absent=True)
    except (OSError, SnapshotError, StoreError) as err:
        return item.model_copy(update={"repair_note": f"cannot repair: {err}"})
    if not check_object(store, item.key, pin.sha256).ok:
        return item.model_copy(update={"repair_note": "restored, but it still does not verify"})
    return item.model_copy(update={"repaired": True, "repair_note": f"restored from {source / pin.path}"})
