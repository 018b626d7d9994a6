"""The shape of a training run: `nodes` machines × `procs_per_node` processes, and the bounds the
Params form, the CLI, the algorithm registry and the plan all share (one place, the same words)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_NODES = 16
MAX_PROCS_PER_NODE = 8

#: What `backend` says when one process trained without a process group (no torchrun).
NO_BACKEND = "none"
#: torch.distributed backends: gloo on CPU, NCCL on CUDA.
CPU_BACKEND = "gloo"
CUDA_BACKEND = "nccl"


class TrainingShape(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    nodes: int = Field(1, ge=1, le=MAX_NODES)
    procs_per_node: int = Field(1, ge=1, le=MAX_PROCS_PER_NODE)

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node

    @property
    def distributed(self) -> bool:
        """More than one process: torchrun starts them and they train as one DDP group."""
        return self.world_size > 1

    def __str__(self) -> str:
        return f"{self.nodes}×{self.procs_per_node}"

    def describe(self) -> str:
        nodes = "node" if self.nodes == 1 else "nodes"
        procs = "process" if self.procs_per_node == 1 else "processes"
        return f"{self.nodes} {nodes} × {self.procs_per_node} {procs} (world size {self.world_size})"
