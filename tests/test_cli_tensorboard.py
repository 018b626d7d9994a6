"""`trainyard tensorboard` refuses, in one line, what names no run. (Serving real runs:
tests/test_resume_after_kill.py; a study's trials: tests/test_hyperparameter_search_dag.py.)"""
from __future__ import annotations

from steps.store.local import LocalStore
from steps.tuning.study_plan import start_study
from tests.conftest import run_cli
from tests.tuning_fixtures import make_study_plan


def test_tensorboard_names_what_it_cannot_find_without_a_traceback(store_root):
    nothing = run_cli("tensorboard")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == (
        "trainyard: error: name at least one MODEL@VERSION, MODEL, RUN_KEY or RUN_ID, "
        "or pass --study STUDY_ID or --all-runs"
    )
    unknown = run_cli("tensorboard", "digits-digits-cnn@3", "no-such-run")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert unknown.stderr.startswith("trainyard: error: no such model 'digits-digits-cnn'; registered models: none")


def test_tensorboard_refuses_an_unknown_study_and_a_study_without_events_in_one_line(store_root):
    unknown = run_cli("tensorboard", "--study", "hyperparameter_search-manual__nope")
    assert unknown.returncode == 2 and len(unknown.stderr.splitlines()) == 1, unknown.stderr
    assert unknown.stderr.startswith("trainyard: error: no study 'hyperparameter_search-manual__nope' in ")

    plan = start_study(LocalStore(store_root), make_study_plan(run_id="no-events-yet"))  # planned, nothing trained
    empty = run_cli("tensorboard", "--study", plan.study_id)
    assert empty.returncode == 2 and len(empty.stderr.splitlines()) == 1, empty.stderr
    assert empty.stderr.strip() == (
        f"trainyard: error: study {plan.study_id} has no trial with TensorBoard events yet "
        "(0 trials proposed, 0 finished); try again once a trial has trained an epoch"
    )


def test_a_trial_whose_status_changed_is_shown_once_under_its_new_name(local_store, tmp_path):
    from steps.lifecycle.run_refs import run_event_source
    from steps.monitoring.tensorboard_logdir import TensorBoardLogdir
    from steps.store.run_layout import RunLayout
    from steps.training.contract import EpochRecord, epochs_jsonl

    run_key = "hyperparameter_search-manual__x-0123456789-trial-001"
    epoch = EpochRecord(epoch=1, epochs_planned=2, train_loss=0.5, test_macro_f1=0.9, wall_time_s=1.0)
    local_store.put_bytes(RunLayout(run_key).train.metrics, epochs_jsonl([epoch]))
    logdir = TensorBoardLogdir(local_store, tmp_path / "logdir")

    assert logdir.add([run_event_source(run_key, label="trial 1 running lr=0.1")]) == ["trial 1 running lr=0.1"]
    assert logdir.add([run_event_source(run_key, label="trial 1 completed lr=0.1")]) == ["trial 1 completed lr=0.1"]
    assert sorted(p.name for p in (tmp_path / "logdir").iterdir()) == ["trial_1_completed_lr=0.1"]
