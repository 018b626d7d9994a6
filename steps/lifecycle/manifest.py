"""The model manifest: everything needed to trust, trace and rebuild a model version.

Schema documented in docs/manifest.md. Serialized once, here, as canonical JSON.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from steps.hashing import canonical_json
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.study_lineage import StudyLineage
from steps.lifecycle.training_identity import TrainingIdentity
from steps.training.contract import EvalMetrics, ResumeInfo
from steps.training.shape import NO_BACKEND, TrainingShape

#: v2 added training_identity; a v1 manifest's identity is derived from its other fields.
MANIFEST_SCHEMA_VERSION = 2
#: Files of a version that show how it trained (optional: older versions lack them).
LEARNING_CURVE_FILE = "learning-curve.png"
TENSORBOARD_EVENTS_FILE = "events.tfevents"


class ManifestFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # file name inside the version
    sha256: str
    size_bytes: int


class DatasetLineage(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    dataset_hash: str
    partitions: list[str]
    as_of: str | None
    source: str
    eval_set_hash: str


class ValidationLineage(BaseModel):
    model_config = ConfigDict(frozen=True)

    success: bool
    report_key: str
    expectations_evaluated: int = 0
    suite_sha256: str | None = None  # the suite's definition hash (steps/data/validation_cache.py)
    gx_version: str | None = None
    reused_from: str | None = None  # the run whose validation of this snapshot was reused


class AirflowLineage(BaseModel):
    model_config = ConfigDict(frozen=True)

    dag_id: str
    run_id: str
    logical_date: str | None


class ReplayRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    mode: Literal["none", "exact", "current-code"] = "none"
    reproduced_from: str | None = None  # MODEL@VERSION whose manifest was replayed
    expected_weights_sha256: str | None = None
    weights_match: bool | None = None


class EvaluationRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    primary_metric: str
    min_improvement: float
    champion_version: int | None
    champion_metrics: EvalMetrics | None
    champion_source: Literal["recorded", "re-evaluated", "none"]
    promote: bool
    reason: str


class ModelManifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = MANIFEST_SCHEMA_VERSION
    model_name: str
    version: int
    created_at: str
    run_key: str
    algorithm: str
    trainer: TrainerImage
    executor: str
    dataset: DatasetLineage
    validation: ValidationLineage
    seed: int
    split_seed: int
    test_fraction: float
    hyperparameters: dict[str, Any]
    num_threads: int
    device: str
    torch_version: str
    # The processes that trained, which the weights depend on (older manifests: one plain process).
    nodes: int = 1
    procs_per_node: int = 1
    world_size: int = 1
    backend: str = NO_BACKEND
    metrics: EvalMetrics
    weights_sha256: str
    epochs_completed: int | None = None  # None: registered before this was recorded
    resumed: ResumeInfo | None = None  # the trainer try that made the weights resumed from a checkpoint
    evaluation: EvaluationRecord
    airflow: AirflowLineage
    replay: ReplayRecord = ReplayRecord()
    historical: bool = False  # registered by a backfill for a date that had no model
    study: StudyLineage | None = None  # the best trial of a hyperparameter study
    files: list[ManifestFile]
    training_identity: TrainingIdentity | None = None  # None only in v1 manifests
    training_identity_sha256: str | None = None

    @property
    def shape(self) -> TrainingShape:
        return TrainingShape(nodes=self.nodes, procs_per_node=self.procs_per_node)

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    def has_file(self, name: str) -> bool:
        return any(entry.name == name for entry in self.files)

    def file(self, name: str) -> ManifestFile:
        for entry in self.files:
            if entry.name == name:
                return entry
        raise KeyError(f"{self.model_name}@{self.version} has no file {name!r}")
