"""The training_pipeline Params form: bounds come from steps.lifecycle.plan.BOUNDS, choices from
the catalogs (two small local YAML reads; no network, no heavy imports).

Hyperparameters left empty mean "the algorithm registry's default" (config/algorithms.yaml); the
form cannot show one default per algorithm because the algorithm is chosen in the same form, so each
field's description lists the registry's values instead."""
from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from steps.lifecycle.plan import BOUNDS, DEFAULT_SEED


def catalog_names() -> tuple[list[str], list[str]]:
    """Dataset and algorithm names for the form's enums (reads two small YAML files)."""
    datasets, algorithms = _catalogs()
    return sorted(datasets), sorted(algorithms)


def _catalogs() -> tuple[dict[str, Any], dict[str, Any]]:
    from steps.catalog.catalog_file import read_catalog_file
    from trainyard.settings import Settings

    settings = Settings.load()
    return (read_catalog_file(settings.datasets_catalog, "datasets"),
            read_catalog_file(settings.algorithms_catalog, "algorithms"))


def registry_defaults(algorithms: dict[str, Any], name: str) -> str:
    """'digits-cnn: 6, intent-classification: 12': each algorithm's registry default for `name`."""
    return ", ".join(
        f"{algorithm}: {(spec or {}).get('defaults', {}).get(name, '-')}" for algorithm, spec in sorted(algorithms.items())
    )


def training_params() -> dict[str, Param]:
    dataset_entries, algorithm_entries = _catalogs()
    datasets, algorithms = sorted(dataset_entries), sorted(algorithm_entries)

    def registry_default(name: str, what: str) -> str:
        return f"{what} Empty: the algorithm registry's default ({registry_defaults(algorithm_entries, name)})."

    return {
        "dataset": Param(
            datasets[0], type="string", enum=datasets, title="Dataset",
            description="Catalog name of the dataset to snapshot (config/datasets.yaml).",
        ),
        "algorithm": Param(
            algorithms[0], type="string", enum=algorithms, title="Algorithm",
            description="Registered training algorithm (config/algorithms.yaml).",
        ),
        "model_name": Param(
            None, type=["null", "string"], title="Model name", pattern=r"^([a-z0-9][a-z0-9._-]{0,62})?$",
            description="Registry name of the model; empty means <dataset>-<algorithm>.",
        ),
        "epochs": Param(
            None, type=["null", "integer"], title="Epochs",
            description=registry_default("epochs", "Passes over the training split."), **BOUNDS["epochs"],
        ),
        "learning_rate": Param(
            None, type=["null", "number"], title="Learning rate",
            description=registry_default("learning_rate", "Adam step size; must be > 0."), **BOUNDS["learning_rate"],
        ),
        "batch_size": Param(
            None, type=["null", "integer"], title="Batch size",
            description=registry_default("batch_size", "Examples per step."), **BOUNDS["batch_size"],
        ),
        "seed": Param(DEFAULT_SEED, type="integer", title="Seed", description="Seeds torch, numpy, random and data order.", **BOUNDS["seed"]),
        "checkpoint_every": Param(
            None, type=["null", "integer"], title="Checkpoint every (epochs)",
            description="Epochs between checkpoints a retried trainer resumes from; 0 = none; empty = the "
            "algorithm registry's default.", **BOUNDS["checkpoint_every"],
        ),
        "stall_timeout_s": Param(
            None, type=["null", "integer"], title="Stall timeout (s)",
            description="Stop (and retry) a trainer that finishes no batch for this many seconds; 0 = never; "
            "empty = the algorithm registry's default.", **BOUNDS["stall_timeout_s"],
        ),
        "force": force_param(),
        **shape_params(),
    }


def shape_params(nodes: int | None = None, procs_per_node: int | None = None) -> dict[str, Param]:
    """nodes × procs_per_node data-parallel processes (torchrun); empty means the algorithm's default."""
    return {
        "nodes": Param(
            nodes, type=["null", "integer"], title="Nodes",
            description="Machines to train on (container or Kubernetes executor for more than 1); "
            "empty means the algorithm's default (config/algorithms.yaml).",
            **BOUNDS["nodes"],
        ),
        "procs_per_node": Param(
            procs_per_node, type=["null", "integer"], title="Processes per node",
            description="Data-parallel training processes on each node (one GPU each on CUDA); "
            "empty means the algorithm's default.",
            **BOUNDS["procs_per_node"],
        ),
    }


def force_param() -> Param:
    return Param(
        False, type="boolean", title="Force retraining",
        description="Train even when a registered version was already trained with this exact trainer, data, "
        "hyperparameters and seeds (otherwise the run reuses that version and trains nothing).",
    )
