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
        "force": force_param(),
    }


def force_param() -> Param:
    return Param(
        False, type="boolean", title="Force retraining",
        description="Train even when a registered version was already trained with this exact trainer, data, "
        "hyperparameters and seeds (otherwise the run reuses that version and trains nothing).",
    )
