"""`trainyard tune` (a hyperparameter study: the real hyperparameter_search DAG in-process, on an embedded
Airflow) and `trainyard study` (a study's trials as a table, best first)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainyard.cli.context import load_settings, open_configured_store

RESUMABLE_RUN_PREFIX = "manual__"


def _read_space(path: str):
    import yaml

    from steps.lifecycle.plan import BadRequest

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BadRequest(f"cannot read the search space file {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadRequest(f"search space file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None


def study_conf(args) -> dict:
    conf = {
        "dataset": args.dataset, "algorithm": args.algorithm, "model_name": args.model_name, "epochs": args.epochs,
        "max_trials": args.max_trials, "parallel_trials": args.parallel_trials, "sampler": args.sampler,
        "pruner": args.pruner, "min_trials": args.min_trials, "start_epoch": args.start_epoch,
        "objective": args.objective, "seed": args.seed, "team": args.team,
        "search_space": _read_space(args.space) if args.space else None,
    }
    return {name: value for name, value in conf.items() if value is not None}


def cmd_tune(args) -> int:
    from datetime import UTC, datetime

    from steps.catalog.catalog import Catalog
    from steps.tuning.request import parse_study_request
    from steps.tuning.study_plan import check_study_request
    from trainyard.local_airflow import run_dag

    settings = load_settings()
    if args.resume:
        plan = _stored_plan(args.resume)
        conf = plan.request.model_dump(mode="json")
        started = _run_after(plan.base.airflow_run_id)
        dag_id = plan.base.dag_id
    else:
        if not (args.dataset and args.algorithm):
            raise ValueError("--dataset and --algorithm are required (or --resume STUDY_ID)")
        conf = study_conf(args)
        # The same checks the study's first task makes: refuse before Airflow starts, naming the problem.
        request = parse_study_request(conf)
        check_study_request(request, Catalog.load(settings.datasets_catalog, settings.algorithms_catalog))
        started, dag_id = datetime.now(UTC), _dag_id(request.team)
    run = run_dag(dag_id, conf, logical_date=started, run_after=started)
    from steps.lifecycle.plan import run_key_for

    study_id = run_key_for(run.dag_id, run.run_id)
    print(f"\nDAG {run.dag_id} run {run.run_id}: {run.state} in {run.wall_time_s:.1f}s")
    code = print_study(study_id) if _has_record(study_id) else 1
    if run.state != "success":
        print(f"failed tasks: {', '.join(run.failed_tasks) or 'unknown'} (see the task log above); "
              f"resume with: trainyard tune --resume {study_id}", file=sys.stderr)
        return 1
    return code


def _dag_id(team: str) -> str:
    from steps.catalog.teams import load_teams
    from steps.tuning.request import study_dag_id

    load_teams().team(team)  # an unknown team has no study DAG: say so before anything runs
    return study_dag_id(team)


def _stored_plan(study_id: str):
    from steps.store import ObjectNotFound
    from steps.tuning.study_plan import stored_plan

    plan = stored_plan(open_configured_store(), study_id)
    if plan is None:
        raise ObjectNotFound(f"no study {study_id!r} to resume (it has no stored plan)")
    return plan


def _run_after(airflow_run_id: str):
    from datetime import datetime

    if not airflow_run_id.startswith(RESUMABLE_RUN_PREFIX):
        raise ValueError(f"run {airflow_run_id} was not started by `trainyard tune`; clear it in Airflow to resume it")
    try:
        return datetime.fromisoformat(airflow_run_id.removeprefix(RESUMABLE_RUN_PREFIX))
    except ValueError:
        raise ValueError(f"run {airflow_run_id} was not started by `trainyard tune`; clear it in Airflow to resume it") from None


def _has_record(study_id: str) -> bool:
    from steps.store.run_layout import StudyLayout

    return open_configured_store().exists(StudyLayout(study_id).record)


def print_study(study_id: str, plots_dir: str | None = None) -> int:
    from steps.lifecycle.register import RegisteredVersion
    from steps.store.run_layout import RunLayout, StudyLayout
    from steps.tuning.study_record import load_study_record
    from steps.tuning.study_table import study_lines

    store = open_configured_store()
    record = load_study_record(store, study_id)
    registered = None
    if record.best_trial is not None:
        key = RunLayout(record.trial(record.best_trial).run_key).registered
        if store.exists(key):
            registered = RegisteredVersion.model_validate_json(store.get_bytes(key))
    print("\n".join(study_lines(record, registered)))
    layout = StudyLayout(study_id)
    if plots_dir:
        for key in (layout.history_plot, layout.parameters_plot):
            store.get_file(key, Path(plots_dir) / key.rsplit("/", 1)[-1])
        print(f"plots written to {plots_dir}")
    else:
        print(f"plots: {store.location}/{layout.history_plot}\n       {store.location}/{layout.parameters_plot}")
    return 0


def cmd_study(args) -> int:
    if args.json:
        from steps.tuning.study_record import load_study_record

        print(load_study_record(open_configured_store(), args.study_id).model_dump_json(indent=2))
        return 0
    return print_study(args.study_id, args.plots)


def register(sub: argparse._SubParsersAction) -> None:
    from steps.training.contract import OBJECTIVES, PRUNERS
    from steps.tuning.request import DEFAULT_START_EPOCH, SAMPLERS, STUDY_BOUNDS

    p = sub.add_parser("tune", help="run a hyperparameter study locally (the hyperparameter_search DAG, dag.test on SQLite)")
    def rng(name: str) -> str:
        bounds = STUDY_BOUNDS[name]
        return f"range: {bounds['minimum']}..{bounds['maximum']}"

    p.add_argument("--dataset", metavar="NAME",
                   help="dataset to tune on: a name in config/datasets.yaml (required unless --resume)")
    p.add_argument("--algorithm", metavar="NAME",
                   help="algorithm to tune: a name in config/algorithms.yaml (required unless --resume)")
    p.add_argument("--model-name", metavar="NAME", help="registry name for the best trial (default <dataset>-<algorithm>)")
    p.add_argument("--max-trials", type=int, metavar="N", help=f"trials in all (default 8; {rng('max_trials')})")
    p.add_argument("--parallel-trials", type=int, metavar="N",
                   help=f"trials per wave, run side by side (default 2; {rng('parallel_trials')})")
    p.add_argument("--sampler", help=f"one of {', '.join(SAMPLERS)} (default tpe)")
    p.add_argument("--pruner", help=f"one of {', '.join(PRUNERS)} (default median)")
    p.add_argument("--min-trials", type=int, metavar="N",
                   help=f"completed trials before the median rule stops any (default 3; {rng('min_trials')})")
    p.add_argument("--start-epoch", type=int, metavar="N",
                   help="first epoch after which a trial may be stopped (default: the algorithm's early_stopping in "
                        f"config/algorithms.yaml, else {DEFAULT_START_EPOCH}; {rng('start_epoch')})")
    p.add_argument("--objective", help=f"one of {', '.join(OBJECTIVES)} (default macro_f1)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help=f"every trial's epochs (default: the algorithm's; {rng('epochs')})")
    p.add_argument("--seed", type=int, metavar="N",
                   help=f"study seed: the sampler's and every trial's (default 42; {rng('seed')})")
    p.add_argument("--space", metavar="FILE",
                   help="YAML file: the search space (default: the algorithm's, config/algorithms.yaml)")
    p.add_argument("--team", help="team whose study DAG (and pool) runs it (default: default)")
    p.add_argument("--resume", metavar="STUDY_ID",
                   help="resume a study `trainyard tune` started; finished trials are kept (default: a new study)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("study", help="print a study's trials as a table, best first")
    p.add_argument("study_id", metavar="STUDY_ID", help="the study's id, as `trainyard tune` printed it")
    p.add_argument("--json", action="store_true", help="print the whole study record (default: a table)")
    p.add_argument("--plots", metavar="DIR",
                   help="also download the study's two plots (PNG) into DIR (default: no download)")
    p.set_defaults(func=cmd_study)
