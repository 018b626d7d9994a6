"""The trainer contract: everything the service tells a trainer, as environment variables,
and the records a trainer writes back (per-epoch metrics, the result, its exit codes).

One typed record, one serializer each way. The subprocess executor, the container
executor and the Kubernetes pod all get exactly `TrainingJob.to_env()` plus the store
env (docs/trainer-contract.md).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from steps.hashing import canonical_json
from steps.store.run_layout import TrainerOutputs
from steps.training.shape import MAX_NODES, MAX_PROCS_PER_NODE, NO_BACKEND, TrainingShape

ENV_PREFIX = "TRAINYARD_"

#: Scratch space is the executor's to provide (an emptyDir in Kubernetes); the
#: trainer reads it from this variable, not from the job record.
ENV_SCRATCH_DIR = "TRAINYARD_SCRATCH_DIR"
DEFAULT_SCRATCH_DIR = "/scratch"
#: Path the KubernetesPodOperator's XCom sidecar reads the result summary from.
XCOM_RETURN_PATH = "/airflow/xcom/return.json"
#: What a study may maximise: metrics the trainer reports every epoch as test_<name> (higher is better).
Objective = Literal["macro_f1", "accuracy"]
#: Optuna's pruners a study may stop its trials with (steps/training/pruning.py).
PrunerKind = Literal["none", "median", "hyperband", "successive-halving"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
PRUNERS: tuple[str, ...] = get_args(PrunerKind)


class PrunerSpec(BaseModel):
    """Which Optuna pruner stops a study's trials early, and its settings (steps/training/pruning.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: PrunerKind = "median"
    min_trials: int = Field(default=3, ge=0)  # median: completed trials before it stops any trial
    start_epoch: int = Field(default=2, ge=1)  # the first epoch after which a trial may be stopped
    max_epochs: int = Field(ge=1)  # every trial's epoch budget (Hyperband's max resource)
    reduction_factor: int = Field(default=3, ge=2)  # Hyperband / successive halving


class PruningSpec(BaseModel):
    """A study trial's link to its study: report each epoch's objective, stop when the pruner says so."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    study_id: str  # the study's Optuna journal lives under StudyLayout(study_id)
    trial_number: int = Field(ge=0)
    objective: Objective = "macro_f1"
    pruner: PrunerSpec


_JSON_FIELDS = ("hyperparameters", "pruning")

#: How a trainer process ends (docs/trainer-contract.md). Executors and the pod operator turn the
#: code into a failure kind: a diverged run is never retried, a stalled one is.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DIVERGED = 3
EXIT_STALLED = 4


class TrainingJob(BaseModel):
    """One trainer invocation. Field names map 1:1 to TRAINYARD_<UPPER> env vars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    algorithm: str
    mode: Literal["train", "evaluate"] = "train"
    dataset_name: str
    dataset_hash: str
    dataset_snapshot_key: str
    output_prefix: str
    seed: int = Field(ge=0)
    split_seed: int = Field(ge=0)
    test_fraction: float = Field(gt=0, lt=1)
    hyperparameters: dict[str, Any]
    num_threads: int = Field(ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    weights_key: str = ""  # evaluate mode: which registered weights to score
    # torchrun starts nodes × procs_per_node processes; each checks it is one of that many.
    nodes: int = Field(1, ge=1, le=MAX_NODES)
    procs_per_node: int = Field(1, ge=1, le=MAX_PROCS_PER_NODE)
    pruning: PruningSpec | None = None  # a study trial: report each epoch, stop when pruned
    # Resilience: none of these changes the weights, so none is part of a checkpoint's job identity.
    checkpoint_every: int = Field(default=1, ge=0)  # epochs between checkpoints; 0 = never
    checkpoints_kept: int = Field(default=2, ge=1)  # the newest K checkpoints stay in the store
    stall_timeout_s: int = Field(default=600, ge=0)  # no batch finished for this long = stalled; 0 = off

    def to_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:  # an absent optional field is an absent variable
                continue
            if isinstance(value, dict):
                text = canonical_json(value).decode("utf-8")
            else:
                text = str(value)
            env[ENV_PREFIX + name.upper()] = text
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TrainingJob:
        values: dict[str, Any] = {}
        missing = []
        for name, field in cls.model_fields.items():
            key = ENV_PREFIX + name.upper()
            if key not in env:
                if field.is_required():
                    missing.append(key)
                continue
            raw = env[key]
            values[name] = json.loads(raw) if name in _JSON_FIELDS else raw
        if missing:
            raise ValueError(f"trainer contract incomplete: missing {', '.join(missing)}")
        return cls.model_validate(values)

    @property
    def shape(self) -> TrainingShape:
        return TrainingShape(nodes=self.nodes, procs_per_node=self.procs_per_node)

    @property
    def outputs(self) -> TrainerOutputs:
        return TrainerOutputs(self.output_prefix)

    @property
    def weights_output_key(self) -> str:
        return self.outputs.weights

    @property
    def metrics_output_key(self) -> str:
        return self.outputs.metrics

    @property
    def result_output_key(self) -> str:
        return self.outputs.result


class EpochRecord(BaseModel):
    """One finished epoch: a line of metrics.jsonl, a TensorBoard step, a point of the learning curve."""

    model_config = ConfigDict(frozen=True)

    epoch: int
    epochs_planned: int | None = None
    train_loss: float
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_macro_f1: float | None = None
    learning_rate: float | None = None
    wall_time_s: float
    finished_at_unix_s: float | None = None

    def metric(self, name: str) -> float | None:
        """`loss`, `accuracy`, `macro_f1`: the test-set value; `train_loss`, `test_loss`, ...: by field name."""
        value = getattr(self, name if name.startswith(("train_", "test_")) else f"test_{name}", None)
        return float(value) if isinstance(value, (int, float)) else None


def epochs_jsonl(records: list[EpochRecord]) -> bytes:
    """metrics.jsonl: one canonical JSON object per epoch."""
    return b"".join(canonical_json(r.model_dump(mode="json", exclude_none=True)) + b"\n" for r in records)


def parse_epochs_jsonl(data: bytes) -> list[EpochRecord]:
    return [EpochRecord.model_validate_json(line) for line in data.splitlines() if line.strip()]


class ResumeInfo(BaseModel):
    """How a trainer try picked up where an earlier try of the same run stopped."""

    model_config = ConfigDict(frozen=True)

    from_epoch: int  # the first epoch this try trained; the ones before it came from the checkpoint
    checkpoint_key: str  # the marker of the checkpoint it resumed from
    unusable_checkpoints: list[str] = []  # newer checkpoints it could not use, each with why


class StopRecord(BaseModel):
    """An epoch-end hook ended training before the planned epochs (e.g. a pruned trial)."""

    model_config = ConfigDict(frozen=True)

    status: str  # e.g. "pruned"
    reason: str
    after_epoch: int


class EvalMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    accuracy: float
    macro_f1: float
    loss: float
    confusion_matrix: list[list[int]]
    n_examples: int


class TrainerResult(BaseModel):
    """The trainer's final summary (result.json, and the XCom sidecar's return.json)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    algorithm: str
    mode: Literal["train", "evaluate"]
    dataset_hash: str
    eval_set_hash: str
    metrics: EvalMetrics
    weights_key: str
    weights_sha256: str
    train_examples: int = 0
    epochs_completed: int = 0
    status: Literal["completed", "pruned"] = "completed"  # pruned: a study's pruner stopped it early
    resumed: ResumeInfo | None = None  # None: this try trained from epoch 1
    stopped: StopRecord | None = None  # None: all planned epochs ran; else which hook ended it, and why
    wall_time_s: float
    torch_version: str
    num_threads: int
    device: str
    world_size: int = 1  # processes that trained together (torchrun's WORLD_SIZE)
    backend: str = NO_BACKEND  # torch.distributed backend: gloo, nccl, or none for one plain process
