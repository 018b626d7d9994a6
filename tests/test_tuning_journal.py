"""Optuna's journal kept in the store: trials of one study report at the same time from separate
processes and nothing is lost or overwritten, on the local store and on a real MinIO."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

import optuna
import pytest

from steps.store import ArtifactStore, StoreSettings, open_store
from steps.store.local import LocalStore
from steps.store.optuna_journal import StoreJournalBackend, journal_storage
from steps.store.run_layout import StudyLayout

LAYOUT = StudyLayout("tests-journal-study")
REPORTS_PER_TRIAL = 25


def _study(store: ArtifactStore, trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=LAYOUT.study_id, storage=journal_storage(store, LAYOUT), direction="maximize")
    for _ in range(trials):
        study.ask()
    return study


def _report_from_another_process(settings: StoreSettings, trial_number: int, start: multiprocessing.synchronize.Event) -> None:
    storage = journal_storage(open_store(settings), LAYOUT)
    study = optuna.load_study(study_name=LAYOUT.study_id, storage=storage)
    trial = optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study._study_id, trial_number))
    start.wait(timeout=120)
    for step in range(1, REPORTS_PER_TRIAL + 1):
        trial.report(trial_number + step / 100, step=step)


def _concurrent_reports(settings: StoreSettings, trials: int) -> list[optuna.trial.FrozenTrial]:
    _study(open_store(settings), trials)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_report_from_another_process, args=(settings, n, start)) for n in range(trials)]
    for worker in workers:
        worker.start()
    start.set()  # all of them at once, once every worker has started
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    return optuna.load_study(study_name=LAYOUT.study_id, storage=journal_storage(open_store(settings), LAYOUT)).trials


def test_trials_reporting_at_once_from_four_processes_lose_no_report(tmp_path):
    settings = StoreSettings(backend="local", root=str(tmp_path / "store"))

    trials = _concurrent_reports(settings, trials=4)

    for trial in trials:
        assert trial.intermediate_values == {s: trial.number + s / 100 for s in range(1, REPORTS_PER_TRIAL + 1)}
    records = list(LocalStore(Path(settings.root)).list_keys(LAYOUT.journal_prefix))
    assert records == [LAYOUT.journal_record(n) for n in range(len(records))]  # numbered without a gap


def test_a_writer_that_lost_the_race_for_a_record_takes_the_next_number_and_overwrites_nothing(tmp_path):
    store = LocalStore(tmp_path / "store")
    slow, fast = StoreJournalBackend(store, LAYOUT), StoreJournalBackend(store, LAYOUT)
    assert list(slow.read_logs(0)) == [] and list(fast.read_logs(0)) == []

    fast.append_logs([{"op_code": 0, "who": "fast"}])
    slow.append_logs([{"op_code": 0, "who": "slow"}])  # still believes record 0 is free

    assert [log["who"] for log in slow.read_logs(0)] == ["fast", "slow"]
    assert [log["who"] for log in fast.read_logs(1)] == ["slow"]


@pytest.mark.minio
def test_trials_reporting_at_once_through_minio_lose_no_report(minio_server):
    from tests.minio_server import unique_bucket_prefix

    settings = minio_server.settings(bucket_prefix=unique_bucket_prefix())

    trials = _concurrent_reports(settings, trials=2)

    for trial in trials:
        assert len(trial.intermediate_values) == REPORTS_PER_TRIAL
    records = list(open_store(settings).list_keys(LAYOUT.journal_prefix))
    assert records == [LAYOUT.journal_record(n) for n in range(len(records))]
