"""Everything that decides what the next epoch computes, in one record a checkpoint saves and a
resume restores whole: model, optimizer, LR scheduler, data-order generator, every RNG, the epoch.

Loop extensions add their own state without changing the format: anything with
`state_dict()` / `load_state_dict()` registered in `TrainingState.extensions` under a name is
saved and restored with the rest (a DistributedSampler's epoch and seed, ...).

Under torchrun every rank draws from its own RNG streams (seed + rank): after each epoch the ranks
share theirs (`share_ranks_rng`), so rank 0's checkpoint holds every rank's, and a resumed rank
continues from its own. A checkpoint of another world size is refused.

A checkpoint payload holds only tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from steps.training.contract import EpochRecord
from steps.training.rng_state import RngSnapshot, capture_rng, restore_rng

PAYLOAD_FORMAT_VERSION = 2  # 2: "rng" is a list, one entry per rank, and "world_size" says how many
OPTIMIZERS = ("adam", "sgd")


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass
class TrainingState:
    model: Any  # torch.nn.Module
    optimizer: Any  # torch.optim.Optimizer
    data_order: Any  # torch.Generator: the shuffling of every epoch, seeded by the run's seed
    device: str
    rng: RngSnapshot  # this process's RNGs as they were when the last finished epoch ended (or before the first)
    scheduler: Any = None  # a torch LR scheduler, stepped once per epoch
    epochs_completed: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    extensions: dict[str, Stateful] = field(default_factory=dict)
    rank: int = 0  # this process among torchrun's ranks (0 of 1 alone)
    world_size: int = 1
    #: Every rank's `rng`, indexed by rank, as shared after the last finished epoch (distributed runs only).
    ranks_rng: list[RngSnapshot] = field(default_factory=list)

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def to_payload(self) -> dict[str, Any]:
        return {
            "format_version": PAYLOAD_FORMAT_VERSION,
            "epochs_completed": self.epochs_completed,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "data_order": self.data_order.get_state(),
            "world_size": self.world_size,
            "rng": [snapshot.to_payload() for snapshot in self._every_ranks_rng()],
            "extensions": {name: ext.state_dict() for name, ext in self.extensions.items()},
        }

    def load_payload(self, payload: dict[str, Any], history: list[EpochRecord]) -> None:
        """Restore from a checkpoint; raises ValueError (or torch's RuntimeError) if it does not fit this run."""
        if payload.get("format_version") != PAYLOAD_FORMAT_VERSION:
            raise ValueError(f"checkpoint format {payload.get('format_version')!r}, this trainer reads {PAYLOAD_FORMAT_VERSION}")
        if (payload["scheduler"] is None) != (self.scheduler is None):
            raise ValueError("checkpoint and run disagree on whether there is an LR scheduler")
        own_rng = self._own_rng(payload)  # first: a checkpoint of another world size fits nothing else either
        missing = sorted(set(self.extensions) - set(payload["extensions"]))
        if missing:
            raise ValueError(f"checkpoint lacks the state of {', '.join(missing)}")
        self.model.load_state_dict(payload["model"], strict=True)
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        self.data_order.set_state(payload["data_order"])
        for name, extension in self.extensions.items():
            extension.load_state_dict(payload["extensions"][name])
        self.rng = own_rng
        self.epochs_completed = int(payload["epochs_completed"])
        self.history = list(history)
        if len(self.history) != self.epochs_completed:
            raise ValueError(f"checkpoint holds {len(self.history)} epoch records for {self.epochs_completed} epochs")

    def _every_ranks_rng(self) -> list[RngSnapshot]:
        if self.world_size == 1:
            return [self.rng]
        if len(self.ranks_rng) != self.world_size:
            raise ValueError(f"the ranks' RNG streams were not shared ({len(self.ranks_rng)} of {self.world_size})")
        return self.ranks_rng

    def _own_rng(self, payload: dict[str, Any]) -> RngSnapshot:
        world_size, streams = payload.get("world_size"), payload["rng"]
        if world_size != self.world_size:
            raise ValueError(
                f"it was made by {world_size} processes and holds their RNG streams; this run has {self.world_size}, "
                "so its epochs would not be the ones the checkpoint continues"
            )
        if not isinstance(streams, list) or len(streams) != world_size:
            raise ValueError(f"it holds no RNG streams for each of its {world_size} processes")
        return RngSnapshot.from_payload(streams[self.rank])

    def share_ranks_rng(self, ranks_rng: list[RngSnapshot]) -> None:
        """Every rank's `rng` after this epoch (gathered from all ranks), for rank 0's checkpoint."""
        self.ranks_rng = list(ranks_rng)

    def end_epoch(self, record: EpochRecord) -> None:
        self.epochs_completed = record.epoch
        self.history.append(record)
        # Taken before any hook runs, and put back before the next epoch: what hooks draw can
        # never change the training, and a resumed run starts the epoch from the same state.
        self.rng = capture_rng(self.device)

    def begin_epoch(self) -> None:
        restore_rng(self.rng)


def new_training_state(model, hyperparameters: dict[str, Any], *, seed: int, device: str) -> TrainingState:
    """A fresh state for `model` (just built from the seeded global RNG)."""
    import torch

    model.to(device)
    learning_rate = float(hyperparameters["learning_rate"])
    name = str(hyperparameters.get("optimizer", "adam"))
    if name == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    elif name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=float(hyperparameters.get("momentum", 0.9)))
    else:
        raise ValueError(f"optimizer {name!r} is not supported; use one of: {', '.join(OPTIMIZERS)}")
    # Data order comes from a generator seeded by the run's seed, never from global state.
    order = torch.Generator().manual_seed(seed)
    return TrainingState(model=model, optimizer=optimizer, data_order=order, device=device, rng=capture_rng(device))
