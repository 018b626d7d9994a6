"""Run parameter bounds and defaults, shared by the DAGs' Params (operators/params.py renders these),
the plan's RunRequest and the CLI's --help. A module of its own, import-free, so the CLI can read them
without importing the plan and `trainyard --help` stays instant."""
from __future__ import annotations

from typing import Any

BOUNDS: dict[str, dict[str, Any]] = {
    "epochs": {"minimum": 1, "maximum": 200},
    "learning_rate": {"exclusiveMinimum": 0, "maximum": 10},
    "batch_size": {"minimum": 1, "maximum": 4096},
    "seed": {"minimum": 0, "maximum": 2**31 - 1},
    # Optional: empty means the algorithm registry's default.
    "checkpoint_every": {"minimum": 0, "maximum": 200},
    "stall_timeout_s": {"minimum": 0, "maximum": 7 * 24 * 3600},
    # steps.training.shape's MAX_NODES and MAX_PROCS_PER_NODE, repeated so this module stays
    # import-free (tests/test_distributed_training.py checks that they agree).
    "nodes": {"minimum": 1, "maximum": 16},
    "procs_per_node": {"minimum": 1, "maximum": 8},
}
DEFAULT_SEED = 42
