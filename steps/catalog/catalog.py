"""The dataset catalog and the algorithm registry (with dated image history)."""
from __future__ import annotations

from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from steps.catalog.catalog_file import build_entry, read_catalog_file
from steps.catalog.near_miss import did_you_mean
from steps.hashing import canonical_json
from steps.project_root import PROJECT_ROOT
from steps.store import ArtifactStore, ObjectExists, validate_name
from steps.training.shape import TrainingShape

ALGORITHM_HISTORY_PREFIX = "models/_algorithms"


class UnknownName(LookupError):
    def __str__(self) -> str:  # KeyError-style repr quoting would garble the message
        return str(self.args[0])


class DatasetEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    source: Path
    schema_name: str = Field(alias="schema")


class Resources(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "1Gi"
    memory_limit: str = "2Gi"
    gpu_count: int = Field(default=0, ge=0, le=8)


class ImageVersion(BaseModel):
    """One entry of an algorithm's image history."""

    model_config = ConfigDict(frozen=True)

    effective_from: date
    version: str
    image: str  # repo:tag or repo@sha256:...
    image_digest: str | None = None  # sha256:... when registered by digest


class EarlyStopping(BaseModel):
    """Where a study's early stopping may first stop this algorithm's trials, when the study does not say:
    it depends on how fast the algorithm's learning curves separate (docs/tuning.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start_epoch: int | None = Field(default=None, ge=1)  # None: the study's default (steps/tuning/request.py)


class AlgorithmEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    schema_name: str = Field(alias="schema")
    entrypoint: str
    repository: str
    defaults: dict[str, Any]
    # The default hyperparameter search space of a study (validated by steps/tuning/space.py).
    search_space: dict[str, Any] = {}
    early_stopping: EarlyStopping = EarlyStopping()
    resources: Resources = Resources()
    deadline_s: int = 3600
    # Surviving interruption (docs/trainer-contract.md): tries of the train task after the first,
    # epochs between checkpoints (0 = none), how many checkpoints stay, and how long without a
    # finished batch counts as stalled (0 = no watchdog). Runs may override the last two's defaults.
    retries: int = Field(default=2, ge=0, le=10)
    checkpoint_every: int = Field(default=1, ge=0)
    checkpoints_kept: int = Field(default=2, ge=1)
    stall_timeout_s: int = Field(default=600, ge=0)
    shape: TrainingShape = TrainingShape()  # nodes × procs_per_node a run gets unless it asks for another
    history: list[ImageVersion]

    def image_on(self, day: date) -> ImageVersion:
        """The image that was current on `day` (latest entry effective on or before it)."""
        candidates = [h for h in self.history if h.effective_from <= day]
        if not candidates:
            first = min(h.effective_from for h in self.history)
            raise UnknownName(f"algorithm {self.name!r} had no registered image on {day}; its history starts {first}")
        return max(candidates, key=lambda h: (h.effective_from, h.image_digest is not None))

    def current_image(self) -> ImageVersion:
        return self.image_on(date.max)


class Catalog:
    def __init__(self, datasets: dict[str, DatasetEntry], algorithms: dict[str, AlgorithmEntry]):
        self.datasets = datasets
        self.algorithms = algorithms

    @classmethod
    def load(cls, datasets_path: Path, algorithms_path: Path, store: ArtifactStore | None = None) -> Catalog:
        datasets = {
            name: build_entry(datasets_path, "dataset", name, partial(_dataset_entry, name, spec))
            for name, spec in read_catalog_file(datasets_path, "datasets").items()
        }
        algorithms = {
            name: build_entry(algorithms_path, "algorithm", name, partial(_algorithm_entry, name, spec))
            for name, spec in read_catalog_file(algorithms_path, "algorithms").items()
        }
        if store is not None:
            algorithms = {name: _with_stored_history(store, entry) for name, entry in algorithms.items()}
        return cls(datasets, algorithms)

    def dataset(self, name: str) -> DatasetEntry:
        validate_name("dataset", name)
        if name not in self.datasets:
            raise UnknownName(
                f"dataset {name!r} is not in the catalog{did_you_mean(name, self.datasets)}; "
                f"known: {', '.join(sorted(self.datasets))}"
            )
        return self.datasets[name]

    def algorithm(self, name: str) -> AlgorithmEntry:
        if name not in self.algorithms:
            raise UnknownName(
                f"algorithm {name!r} is not registered{did_you_mean(name, self.algorithms)}; "
                f"registered: {', '.join(sorted(self.algorithms))}"
            )
        return self.algorithms[name]


def _dataset_entry(name: str, spec: dict[str, Any]) -> DatasetEntry:
    source = Path(spec["source"])
    return DatasetEntry(name=name, source=source if source.is_absolute() else PROJECT_ROOT / source, schema=spec["schema"])


def _algorithm_entry(name: str, spec: dict[str, Any]) -> AlgorithmEntry:
    return AlgorithmEntry(name=name, **spec)


def _with_stored_history(store: ArtifactStore, entry: AlgorithmEntry) -> AlgorithmEntry:
    prefix = f"{ALGORITHM_HISTORY_PREFIX}/{entry.name}/history/"
    stored = [ImageVersion.model_validate_json(store.get_bytes(k)) for k in store.list_keys(prefix)]
    if not stored:
        return entry
    return entry.model_copy(update={"history": [*entry.history, *stored]})


def register_image_version(store: ArtifactStore, algorithm: str, version: ImageVersion) -> str:
    """Append an entry to an algorithm's history; entries are never rewritten."""
    validate_name("algorithm", algorithm)
    digest_part = (version.image_digest or "tag").replace("sha256:", "")[:12]
    key = f"{ALGORITHM_HISTORY_PREFIX}/{algorithm}/history/{version.effective_from.isoformat()}-{version.version}-{digest_part}.json"
    entry = canonical_json(version.model_dump(mode="json"))
    try:
        store.put_bytes(key, entry, if_absent=True)
    except ObjectExists:
        if store.get_bytes(key) != entry:  # the same entry twice is one fact; a different one is a clash
            raise ObjectExists(
                f"{key} already records a different image for {algorithm!r}; history is never rewritten"
            ) from None
    return key
