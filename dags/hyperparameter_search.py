"""hyperparameter_search: a study of trials, each an ordinary training run; the best one goes through
the champion gate. Manual trigger (Params form); one DAG per team, so its pool bounds the trials:
`hyperparameter_search` for the default team, `hyperparameter_search_<team>` for the others.

    plan_study -> snapshot -> validate
      -> suggest_wave_1 -> train_wave_1 [one mapped train task per trial] -> record_wave_1
      -> ... up to MAX_WAVES waves; the waves a study does not need are skipped
      -> finish_study (study record, plots, best trial) -> evaluate -> register

Airflow DAGs cannot loop, so the waves are a fixed number of stages (docs/tuning.md).
"""
from __future__ import annotations

from airflow.sdk import dag

from operators.pipeline_tasks import evaluate_task, register_task, snapshot_task, validate_task
from operators.train_step import trial_train_step
from operators.tuning_params import study_params
from operators.tuning_tasks import (
    SUGGEST_AFTER_FIRST_WAVE,
    finish_study_task,
    plan_study_task,
    record_wave_task,
    suggest_wave_task,
)
from operators.xcom import XComRecord
from steps.catalog.teams import TeamEntry, load_teams
from steps.tuning.request import MAX_WAVES, study_dag_id


def study_dag(team: TeamEntry):
    @dag(
        dag_id=study_dag_id(team.name),
        schedule=None,
        catchup=False,
        params=study_params(team.name),
        tags=["trainyard", "tuning"],
        doc_md=__doc__,
    )
    def study():
        plan: XComRecord = plan_study_task(team.name)
        snapshot = snapshot_task(plan["run"])
        validation = validate_task(plan["run"], snapshot)
        after: list = [validation]
        study_tasks: list = []
        for wave in range(1, MAX_WAVES + 1):
            suggest = suggest_wave_task.override(
                task_id=f"suggest_wave_{wave}", **({"trigger_rule": SUGGEST_AFTER_FIRST_WAVE} if wave > 1 else {})
            )(wave)
            after >> suggest
            trials = trial_train_step(team, wave, snapshot, validation, suggest)
            record = record_wave_task.override(task_id=f"record_wave_{wave}")(wave)
            trials >> record
            suggest >> record
            after = [suggest, record]
            study_tasks += after
        best: XComRecord = finish_study_task()  # the best trial: best["plan"], best["result"]
        study_tasks >> best
        evaluation = evaluate_task(best["plan"], best["result"])
        register_task(best["plan"], snapshot, validation, best["result"], evaluation)

    return study()


for _team in load_teams().teams.values():
    globals()[study_dag_id(_team.name)] = study_dag(_team)
