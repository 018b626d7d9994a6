"""The pruning epoch-end hook of a study's trial: report each epoch's objective to the study (Optuna's
journal, kept in the store) and stop training when Optuna's pruner says so.

Only the trainer's store credentials are needed: the study is the journal under
StudyLayout(study_id), read and appended through the same store the trainer writes its outputs to.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any

from steps.store import ArtifactStore
from steps.store.run_layout import StudyLayout
from steps.training.contract import EpochRecord, PrunerSpec, PruningSpec, StopRecord
from steps.training.training_state import TrainingState


def optuna_pruner(spec: PrunerSpec) -> Any:
    """Optuna's own pruner for the spec. The median rule is Katib's default early stopping:
    min_trials completed trials before it acts (n_startup_trials), never before start_epoch
    (n_warmup_steps); Optuna compares a trial's best value so far with the median of the
    completed trials' values at the same epoch."""
    import optuna

    if spec.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.min_trials, n_warmup_steps=spec.start_epoch)
    if spec.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.start_epoch, max_resource=spec.max_epochs, reduction_factor=spec.reduction_factor
        )
    if spec.kind == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.start_epoch, reduction_factor=spec.reduction_factor
        )
    return optuna.pruners.NopPruner()


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; the trainer's log keeps its own one line per epoch."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)


class PruningHook:
    """A study trial's last epoch-end hook (steps/training/loop.py): it runs after the epoch's checkpoint
    is taken and its metrics are stored, and ends the trial with a `pruned` StopRecord."""

    activity = "reporting the epoch to the study"  # what the stall watchdog names if this hangs

    def __init__(self, spec: PruningSpec, store: ArtifactStore) -> None:
        import optuna

        from steps.store.optuna_journal import journal_storage

        quiet_optuna()
        self.spec = spec
        storage = journal_storage(store, StudyLayout(spec.study_id))
        # The sampler is never asked here (the trial's parameters were fixed when its wave was proposed).
        study = optuna.load_study(
            study_name=spec.study_id,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=optuna_pruner(spec.pruner),
        )
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, spec.trial_number)
        self.trial = optuna.trial.Trial(study, trial_id)

    def on_epoch_end(self, state: TrainingState, record: EpochRecord) -> StopRecord | None:
        value = record.metric(self.spec.objective)
        if value is None:
            raise ValueError(f"epoch {record.epoch} has no test {self.spec.objective} to report to the study")
        # A resumed trial may report an epoch its killed try already reported: Optuna keeps the first
        # value (the same one, since the resumed epoch is bit-identical) and warns; silence that warning.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is already reported.*")
            self.trial.report(value, step=record.epoch)
        # After the last epoch there is nothing left to save: the trial completes.
        if record.epoch < self.spec.pruner.max_epochs and self.trial.should_prune():
            reason = f"{self.spec.pruner.kind} rule, {self.spec.objective}={value:.4f}"
            print(f"trainyard-trainer: pruned after epoch {record.epoch}: {reason}", flush=True)
            return StopRecord(status="pruned", reason=reason, after_epoch=record.epoch)
        return None
