"""Propose, run-list and record a study's trials in waves.

Asking a sampler when a trial happens to start would make the proposals depend on timing. A wave
is proposed at once instead, after every earlier wave has been told: a scratch copy of the study
(its finished trials and attributes) is asked parallel_trials times with a sampler seeded for
(study seed, wave), and the proposals are committed as the wave's record (create-only) before
they enter the study's journal. A wave is therefore a function of the study seed, the wave
number, parallel_trials, the plan and the earlier waves' results, and a cleared or restarted
run finds the same wave again instead of asking anew.
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from steps.lifecycle.plan import RunPlan
from steps.store import ArtifactStore, IntegrityError, ObjectExists
from steps.store.run_layout import RunLayout
from steps.tuning.finish import summarize
from steps.tuning.samplers import make_sampler, wave_seed
from steps.tuning.study_plan import StudyPlan
from steps.tuning.study_record import TrialRecord, commit_trial_record, load_trial_record, trial_outcome
from steps.tuning.study_state import open_study


class ProposedTrial(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    params: dict[str, Any]
    distributions: dict[str, str]  # Optuna's distribution JSON, per parameter
    system_attrs: dict[str, Any]  # what the sampler keeps on the trial (grid id, CMA-ES state, ...)


class WaveRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    wave: int
    sampler: str
    sampler_seed: int
    trials: list[ProposedTrial]
    study_system_attrs: dict[str, Any]  # what the sampler keeps on the study (the Sobol position)


class WaveOrderError(RuntimeError):
    """A wave was asked for before the one before it was recorded."""


def _plain(value: Any) -> Any:
    """JSON-safe copies of what Optuna returns (numpy scalars included)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def propose_wave(plan: StudyPlan, history: list[Any], study_system_attrs: dict[str, Any], wave: int) -> WaveRecord:
    """The next wave's trials, from the finished trials so far: a pure function of its arguments."""
    import optuna
    from optuna.distributions import distribution_to_json

    from steps.training.pruning import optuna_pruner, quiet_optuna

    quiet_optuna()
    request = plan.request
    sampler = make_sampler(request.sampler, study_seed=request.seed, wave=wave, space=plan.space)
    # The pruner matters to proposals too: Hyperband shows a sampler only its own bracket's trials.
    scratch = optuna.create_study(direction="maximize", sampler=sampler, pruner=optuna_pruner(plan.pruner))
    for key, value in study_system_attrs.items():
        scratch._storage.set_study_system_attr(scratch._study_id, key, value)
    scratch.add_trials(history)
    distributions = plan.space.distributions()
    proposed = []
    for _ in range(min(request.parallel_trials, request.max_trials - len(history))):
        trial = scratch.ask(distributions)
        frozen = scratch._storage.get_trial(trial._trial_id)
        proposed.append(
            ProposedTrial(
                number=frozen.number,
                params=_plain(frozen.params),
                distributions={name: distribution_to_json(d) for name, d in frozen.distributions.items()},
                system_attrs=_plain(frozen.system_attrs),
            )
        )
    return WaveRecord(
        wave=wave,
        sampler=request.sampler,
        sampler_seed=wave_seed(request.seed, wave),
        trials=proposed,
        study_system_attrs=_plain(scratch._storage.get_study_system_attrs(scratch._study_id)),
    )


def load_wave(store: ArtifactStore, plan: StudyPlan, wave: int) -> WaveRecord | None:
    key = plan.layout.wave(wave)
    return WaveRecord.model_validate_json(store.get_bytes(key)) if store.exists(key) else None


def _commit_wave(store: ArtifactStore, plan: StudyPlan, record: WaveRecord) -> WaveRecord:
    try:
        store.put_bytes(plan.layout.wave(record.wave), record.model_dump_json(indent=2).encode(), if_absent=True)
    except ObjectExists:  # a concurrent try of the same task got there first: its wave stands
        stored = load_wave(store, plan, record.wave)
        assert stored is not None
        return stored
    return record


def _enter_into_study(study: Any, record: WaveRecord) -> None:
    """Create the wave's trials in the study's journal (those a previous try has not created yet)."""
    import optuna
    from optuna.distributions import json_to_distribution

    existing = study.get_trials(deepcopy=False)
    for proposed in record.trials:
        if proposed.number < len(existing):
            if existing[proposed.number].params != proposed.params:
                raise IntegrityError(
                    f"study journal's trial {proposed.number} has parameters {existing[proposed.number].params}, "
                    f"but wave {record.wave} proposed {proposed.params}"
                )
            continue
        if proposed.number != len(existing):
            raise IntegrityError(
                f"wave {record.wave} proposed trial {proposed.number}, but the study journal holds {len(existing)} trials"
            )
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.RUNNING,
                params=proposed.params,
                distributions={name: json_to_distribution(d) for name, d in proposed.distributions.items()},
                system_attrs=proposed.system_attrs,
            )
        )
        existing = study.get_trials(deepcopy=False)
    current = study._storage.get_study_system_attrs(study._study_id)
    for key, value in record.study_system_attrs.items():
        if current.get(key) != value:
            study._storage.set_study_system_attr(study._study_id, key, value)


def _ran(store: ArtifactStore, plan: StudyPlan, number: int) -> bool:
    """The trial's trainer left a result, or its outcome is recorded: it is never run again."""
    if load_trial_record(store, plan.layout, number) is not None:
        return True
    return store.exists(RunLayout(plan.layout.trial_run_key(number)).train.result)


def suggest_wave(store: ArtifactStore, plan: StudyPlan, wave: int) -> list[RunPlan] | None:
    """The trials of `wave` that still have to run (each an ordinary RunPlan), or None when the study
    already has all its trials and the wave is not needed."""
    study = open_study(store, plan.layout, plan.pruner)
    record = load_wave(store, plan, wave)
    if record is None:
        history = study.get_trials(deepcopy=False)
        if len(history) >= plan.request.max_trials:
            return None
        unfinished = [t.number for t in history if not t.state.is_finished()]
        if unfinished:
            raise WaveOrderError(
                f"wave {wave} cannot be proposed: trials {unfinished} of wave {wave - 1} are not recorded yet"
            )
        record = _commit_wave(store, plan, propose_wave(plan, history, study._storage.get_study_system_attrs(study._study_id), wave))
    _enter_into_study(study, record)
    pending = [t for t in record.trials if not _ran(store, plan, t.number)]
    if not pending:  # every trial ran before a restart: record the wave here, nothing is trained again
        record_wave(store, plan, wave)
    return [plan.trial_plan(t.number, t.params) for t in pending]


def record_wave(store: ArtifactStore, plan: StudyPlan, wave: int) -> list[TrialRecord] | None:
    """Record each trial of `wave` (completed, pruned or failed) and tell the study; None if the wave
    was never proposed."""
    import optuna

    record = load_wave(store, plan, wave)
    if record is None:
        return None
    study = open_study(store, plan.layout, plan.pruner)
    trials = study.get_trials(deepcopy=False)
    outcomes = []
    for proposed in record.trials:
        frozen = trials[proposed.number]
        outcome = load_trial_record(store, plan.layout, proposed.number) or commit_trial_record(
            store,
            plan.layout,
            trial_outcome(
                store,
                proposed.number,
                wave,
                proposed.params,
                plan.base.seed,
                plan.request.objective,
                plan.layout.trial_run_key(proposed.number),
                dict(frozen.intermediate_values),
            ),
        )
        if not frozen.state.is_finished():
            if outcome.status == "completed":
                study.tell(proposed.number, outcome.objective)
            elif outcome.status == "pruned":
                study.tell(proposed.number, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(proposed.number, state=optuna.trial.TrialState.FAIL)
        outcomes.append(outcome)
    summarize(store, plan, "running")
    return outcomes
