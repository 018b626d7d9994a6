"""The training_pipeline Params form: bounds come from steps.lifecycle.plan.BOUNDS, choices from
the catalogs (two small local YAML reads; no network, no heavy imports)."""
from __future__ import annotations

from airflow.sdk import Param

from steps.lifecycle.plan import BOUNDS


def catalog_names() -> tuple[list[str], list[str]]:
    """Dataset and algorithm names for the form's enums (reads two small YAML files)."""
    import yaml

    from trainyard.settings import Settings

    settings = Settings.load()
    datasets = sorted(yaml.safe_load(settings.datasets_catalog.read_text()) or {})
    algorithms = sorted(yaml.safe_load(settings.algorithms_catalog.read_text()) or {})
    return datasets, algorithms


def training_params() -> dict[str, Param]:
    datasets, algorithms = catalog_names()
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
        "epochs": Param(8, type="integer", title="Epochs", description="Passes over the training split.", **BOUNDS["epochs"]),
        "learning_rate": Param(
            0.01, type="number", title="Learning rate", description="Adam step size; must be > 0.", **BOUNDS["learning_rate"]
        ),
        "batch_size": Param(32, type="integer", title="Batch size", description="Examples per step.", **BOUNDS["batch_size"]),
        "seed": Param(42, type="integer", title="Seed", description="Seeds torch, numpy, random and data order.", **BOUNDS["seed"]),
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
