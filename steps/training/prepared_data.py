"""The trainer's data: the snapshot materialised and re-verified, split by content, featurised."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from steps.store import ArtifactStore
from steps.training.contract import TrainingJob
from steps.training.split import eval_set_hash, example_content_hash, is_test_example


class TrainerAlgorithm(Protocol):
    name: str
    schema_name: str

    def featurize(self, frame, hyperparameters: dict[str, Any]):
        """Examples (a DataFrame of the schema's columns) -> a float/long feature tensor."""

    def build_model(self, hyperparameters: dict[str, Any], n_classes: int):
        """A freshly initialised torch.nn.Module (initialised from the global torch seed)."""


class TrainerError(RuntimeError):
    pass


@dataclass(frozen=True)
class PreparedData:
    train_x: Any
    train_y: Any
    test_x: Any
    test_y: Any
    n_classes: int
    eval_set_hash: str


def split_examples(frame, schema, split_seed: int, test_fraction: float):
    """Boolean test mask and content hashes; content excludes the example id."""
    import numpy as np

    content_columns = [c for c in frame.columns if c not in (schema.id_column, schema.label_column)]
    hashes = [
        example_content_hash([str(v) for v in row[:-1]], int(row[-1]))
        for row in frame[content_columns + [schema.label_column]].itertuples(index=False, name=None)
    ]
    mask = np.array([is_test_example(h, split_seed, test_fraction) for h in hashes], dtype=bool)
    return mask, hashes


def prepare_data(store: ArtifactStore, job: TrainingJob, algorithm: TrainerAlgorithm, work: Path) -> PreparedData:
    import torch

    from steps.data.dataset_reader import read_examples
    from steps.data.schemas import get_schema
    from steps.data.snapshot import load_snapshot, materialize_snapshot

    schema = get_schema(algorithm.schema_name)
    snapshot = load_snapshot(store, job.dataset_name, job.dataset_hash)
    data_dir = materialize_snapshot(store, snapshot, work / "dataset")  # re-verifies every hash
    frame, labels = read_examples(data_dir, schema)

    test_mask, content_hashes = split_examples(frame, schema, job.split_seed, job.test_fraction)
    eval_hash = eval_set_hash([h for h, is_test in zip(content_hashes, test_mask, strict=True) if is_test])
    targets = torch.tensor(frame[schema.label_column].astype(int).to_numpy(), dtype=torch.long)
    features = algorithm.featurize(frame, job.hyperparameters)
    test = torch.from_numpy(test_mask)
    data = PreparedData(
        train_x=features[~test],
        train_y=targets[~test],
        test_x=features[test],
        test_y=targets[test],
        n_classes=max(labels) + 1,
        eval_set_hash=eval_hash,
    )
    if len(data.test_y) == 0 or len(data.train_y) == 0:
        raise TrainerError(f"split left {len(data.train_y)} training and {len(data.test_y)} test examples; need both")
    return data
