"""A training's identity: everything that determines its weights, as one typed record and its hash.

Two trainings with the same identity produce the same weights (on CPU, bit for bit), so a model
version registered with an identity is the result of every later request with that identity.
Caches keyed on a run id or an image tag miss a change of code or data; this one is keyed on content:
the trainer's pin (image digest, or the embedded trainer's code hash plus the torch it runs on),
the dataset hash, the hyperparameters, the seeds, the split and the thread count.

Adding a field: give it a default that means "what training did before the field existed" (for
distributed training: world_size=1). The hash leaves out every field at its default, so identities
recorded before the field was added keep their hashes and stay reusable.
"""
from __future__ import annotations

import importlib.metadata
from typing import Any

from pydantic import BaseModel, ConfigDict

from steps.hashing import sha256_json
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.plan import RunPlan


class TrainingIdentity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: str
    trainer: str  # "sha256:<image digest>", or "code:<sha256 of the embedded trainer's code>"
    dataset_hash: str
    hyperparameters: dict[str, Any]  # the resolved config: algorithm defaults overlaid with the request
    seed: int
    split_seed: int
    test_fraction: float
    num_threads: int  # reduction order depends on it
    # Data-parallel processes: each takes its own shard and the all-reduce sums in rank order, so the
    # weights depend on it (not on how the processes are spread over nodes: docs/trainer-contract.md).
    world_size: int = 1
    # An image digest pins the trainer's whole environment; the embedded trainer's code hash does not
    # cover the Python it runs on, so its identity adds the torch version that computes the weights.
    torch_version: str | None = None

    def hashed_fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)

    @property
    def sha256(self) -> str:
        return sha256_json(self.hashed_fields())

    def describe(self) -> str:
        """One line for people: what the hash stands for."""
        hp = ", ".join(f"{name}={value}" for name, value in sorted(self.hyperparameters.items()))
        torch = f" on torch {self.torch_version}" if self.torch_version else ""
        return (
            f"{self.algorithm} trainer {self.trainer[:19]}{torch}, data {self.dataset_hash[:12]}, seed {self.seed}, "
            f"split {self.split_seed}/{self.test_fraction}, threads {self.num_threads}, "
            f"world size {self.world_size}, {hp}"
        )


def trainer_pin(image: TrainerImage) -> str:
    if image.image_digest:
        return image.image_digest
    return f"code:{image.code_sha256}"


def short_torch_version(version: str) -> str:
    return version.split("+", 1)[0]  # "2.15.0+cpu" -> "2.15.0", as trainers report it


def installed_torch_version() -> str:
    """The torch the embedded (subprocess) trainer runs on: this Python's, read without importing it."""
    return short_torch_version(importlib.metadata.version("torch"))


def identity_for(plan: RunPlan, dataset_hash: str, *, torch_version: str | None = None) -> TrainingIdentity:
    """The identity of the training `plan` asks for on this dataset. For the embedded trainer the torch
    version is the one installed here unless given (register passes the one the trainer reported)."""
    code_pinned = not plan.image.image_digest
    if code_pinned:
        torch_version = short_torch_version(torch_version) if torch_version else installed_torch_version()
    return TrainingIdentity(
        algorithm=plan.algorithm,
        trainer=trainer_pin(plan.image),
        dataset_hash=dataset_hash,
        hyperparameters=plan.hyperparameters,
        seed=plan.seed,
        split_seed=plan.split_seed,
        test_fraction=plan.test_fraction,
        num_threads=plan.num_threads,
        world_size=plan.shape.world_size,
        torch_version=torch_version if code_pinned else None,
    )
