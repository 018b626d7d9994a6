"""The torchrun command that starts a trainer as nodes × procs_per_node processes. torchrun (torch's
own elastic launcher) spawns the ranks, forms the rendezvous and tears the group down when one rank
dies; Trainyard only chooses its flags. Every executor and the Kubernetes Job use this one command.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from steps.training.shape import TrainingShape

TORCHRUN_MODULE = "torch.distributed.run"
#: Each rank's output lines start with "[rank<N>]: " (torchrun's tee), so a failure can show one rank's log.
RANK_LOG_PREFIX = "[rank${rank}]: "
RENDEZVOUS_PORT = 29500
DEFAULT_RENDEZVOUS_TIMEOUT_S = 300


class Rendezvous(BaseModel):
    """Where the nodes of a multi-node run meet: node 0 hosts the store at master_addr:master_port."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    master_addr: str
    master_port: int = Field(RENDEZVOUS_PORT, ge=1, le=65535)
    # This node's rank: a number, or "$(JOB_COMPLETION_INDEX)" for the kubelet to fill in.
    node_rank: str
    timeout_s: int = Field(DEFAULT_RENDEZVOUS_TIMEOUT_S, ge=1)


def torchrun_command(python: str, script: str, shape: TrainingShape, rendezvous: Rendezvous | None = None) -> list[str]:
    """One node: a standalone rendezvous on a port the OS picks. Several: a static rendezvous at
    node 0 (so node i always holds ranks i*P .. i*P+P-1) that fails after `timeout_s` if a node never joins."""
    command = [
        python, "-m", TORCHRUN_MODULE,
        "--nnodes", str(shape.nodes),
        "--nproc-per-node", str(shape.procs_per_node),
        "--max-restarts", "0",  # a dead rank fails the run; a restart would not be the run the manifest pins
        "--tee", "3",
        "--log-line-prefix-template", RANK_LOG_PREFIX,
    ]
    if shape.nodes == 1:
        command.append("--standalone")
    elif rendezvous is None:
        raise ValueError(f"a {shape} run needs a rendezvous address for its {shape.nodes} nodes")
    else:
        command += [
            "--rdzv-backend", "static",
            "--node-rank", rendezvous.node_rank,
            "--master-addr", rendezvous.master_addr,
            "--master-port", str(rendezvous.master_port),
            "--rdzv-conf", f"timeout={rendezvous.timeout_s}",
        ]
    return [*command, script]
