"""A study's Optuna study, opened on its journal in the store (steps/store/optuna_journal.py)."""
from __future__ import annotations

from typing import Any

from steps.store import ArtifactStore
from steps.store.optuna_journal import journal_storage
from steps.store.run_layout import StudyLayout
from steps.training.contract import PrunerSpec
from steps.training.pruning import optuna_pruner, quiet_optuna


def create_study(store: ArtifactStore, layout: StudyLayout) -> Any:
    import optuna

    quiet_optuna()
    return optuna.create_study(
        study_name=layout.study_id,
        storage=journal_storage(store, layout),
        direction="maximize",
        load_if_exists=True,
    )


def open_study(store: ArtifactStore, layout: StudyLayout, pruner: PrunerSpec) -> Any:
    """The study with its pruner. Its sampler is a placeholder that is never asked: waves are proposed
    on a scratch copy (steps/tuning/waves.py), and telling must not run a real sampler's hooks (the
    grid sampler's would try to stop an optimize loop that does not exist here)."""
    import optuna

    quiet_optuna()
    return optuna.load_study(
        study_name=layout.study_id,
        storage=journal_storage(store, layout),
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna_pruner(pruner),
    )
