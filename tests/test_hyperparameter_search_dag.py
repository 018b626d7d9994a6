"""The hyperparameter_search DAG through `trainyard tune` (dag.test() on the embedded defaults).

One study runs for the whole module, and is interrupted on purpose: `trainyard tune` is killed once
its first wave is recorded and `trainyard tune --resume` finishes it, as clearing the run would.
Its grid has one point the trainer cannot train (hash_buckets -1), so one trial fails on purpose.
"""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from steps.lifecycle.model_registry import load_manifest
from steps.lifecycle.register import RegisteredVersion
from steps.store.local import LocalStore
from steps.store.run_layout import RunLayout, StudyLayout
from steps.tuning.study_record import StudyRecord, load_study_record
from tests.conftest import PROJECT_ROOT, run_cli
from tests.tensorboard_http import TENSORBOARD_START_S, get_json, start_tensorboard

pytestmark = pytest.mark.slow

SPACE = """\
hash_buckets: {type: categorical, choices: [-1, 64, 256]}
learning_rate: {type: categorical, choices: [0.05]}
"""
STUDY = ["--dataset", "intents", "--algorithm", "intent-classification", "--sampler", "grid", "--max-trials", "3",
         "--parallel-trials", "2", "--epochs", "2", "--min-trials", "1", "--start-epoch", "1", "--seed", "5"]
STUDY_TIMEOUT_S = 1800


@dataclass
class ResumedStudy:
    store: LocalStore
    env: dict[str, str]
    study_id: str
    first_wave: dict[str, bytes]  # key -> bytes, as they were when the first run was killed
    resumed: subprocess.CompletedProcess

    @property
    def record(self) -> StudyRecord:
        return load_study_record(self.store, self.study_id)


def _kill_processes_using(store_root: Path) -> None:
    """The killed CLI's trainers run in sessions of their own: end every process this study started."""
    marker = f"TRAINYARD_STORE_ROOT={store_root}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


@pytest.fixture(scope="module")
def resumed_study(airflow_db, tmp_path_factory) -> ResumedStudy:
    root = tmp_path_factory.mktemp("study") / "store"
    space = root.parent / "space.yaml"
    space.write_text(SPACE)
    env = {**os.environ, "TRAINYARD_STORE": "local", "TRAINYARD_STORE_ROOT": str(root),
           "TRAINYARD_STAT_CACHE": str(root.parent / "stat-cache.sqlite")}
    first = subprocess.Popen(
        [sys.executable, "-m", "trainyard.cli", "tune", *STUDY, "--space", str(space)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    recorded: list[Path] = []
    while not recorded and first.poll() is None and time.monotonic() < deadline:
        recorded = list(root.glob("runs/*/study/trials/0001.json"))  # wave 1 (trials 0 and 1) is recorded
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    _kill_processes_using(root)
    assert recorded, "the first wave was never recorded"
    store = LocalStore(root)
    study_id = recorded[0].parts[-4]
    first_wave = {}
    for number in (0, 1):
        run = RunLayout(StudyLayout(study_id).trial_run_key(number))
        for key in (StudyLayout(study_id).trial(number), run.train.trainer_log):
            first_wave[key] = store.get_bytes(key)

    resumed = run_cli("tune", "--resume", study_id, env=env, timeout=STUDY_TIMEOUT_S)
    return ResumedStudy(store, env, study_id, first_wave, resumed)


def test_a_killed_study_resumes_without_running_its_finished_trials_again(resumed_study):
    assert resumed_study.resumed.returncode == 0, resumed_study.resumed.stderr[-3000:]
    store = resumed_study.store
    for key, before in resumed_study.first_wave.items():
        assert store.get_bytes(key) == before, f"{key} was written again"
    record = resumed_study.record
    assert record.status == "finished" and sorted(t.number for t in record.trials) == [0, 1, 2]
    journal = list(store.list_keys(StudyLayout(resumed_study.study_id).journal_prefix))
    assert sum(b'"op_code":4' in store.get_bytes(k) for k in journal) == 3  # no trial was asked twice


def test_a_trial_the_trainer_cannot_train_is_recorded_failed_and_the_study_goes_on(resumed_study):
    record = resumed_study.record
    failed = [t for t in record.trials if t.status == "failed"]
    assert [t.params["hash_buckets"] for t in failed] == [-1]
    assert failed[0].objective is None and "trainyard-trainer: error:" in failed[0].failure
    assert {t.params["hash_buckets"] for t in record.trials if t.status != "failed"} == {64, 256}
    assert record.trials[-1] == failed[0]  # failed trials rank last


def test_the_best_trial_is_registered_through_the_champion_gate_naming_its_study_and_trial(resumed_study):
    record = resumed_study.record
    best = record.trial(record.best_trial)
    assert best.status == "completed" and best == record.trials[0]
    registered = RegisteredVersion.model_validate_json(resumed_study.store.get_bytes(RunLayout(best.run_key).registered))
    manifest = load_manifest(resumed_study.store, registered.model_name, registered.version)
    assert manifest.study is not None
    assert (manifest.study.study_id, manifest.study.trial_number) == (resumed_study.study_id, best.number)
    assert manifest.hyperparameters["hash_buckets"] == best.params["hash_buckets"]
    assert manifest.weights_sha256 == best.weights_sha256
    assert manifest.evaluation.reason.startswith("no champion yet") and registered.champion
    lineage = run_cli("lineage", f"{registered.model_name}@{registered.version}", env=resumed_study.env, timeout=300)
    assert f"study             : trial {best.number} of {resumed_study.study_id}" in lineage.stdout


def test_trainyard_study_prints_every_trial_best_first_and_the_registered_version(resumed_study):
    done = run_cli("study", resumed_study.study_id, env=resumed_study.env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "trial"])
    rows = [line.split() for line in lines[header + 1:header + 4]]
    assert [row[1] for row in rows] == [str(t.number) for t in resumed_study.record.trials]
    assert [row[2] for row in rows][-1] == "failed"
    assert "registered as intents-intent-classification@1 (champion: True)" in done.stdout


def test_trainyard_reproduce_rebuilds_the_best_trial_bit_identically(resumed_study):
    done = run_cli("reproduce", "intents-intent-classification@1", env=resumed_study.env, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "weights hash matches" in done.stdout


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_study_stores_its_optimisation_history_and_parameter_plots(resumed_study):
    layout = StudyLayout(resumed_study.study_id)
    assert _png_size(resumed_study.store.get_bytes(layout.history_plot)) == (800, 450)
    assert _png_size(resumed_study.store.get_bytes(layout.parameters_plot)) == (800, 320)  # two parameters


def test_each_team_gets_a_study_dag_whose_trials_run_in_its_pool():
    code = (
        "from trainyard.local_airflow import configure_airflow_env, load_dag; configure_airflow_env()\n"
        "for dag_id in ('hyperparameter_search', 'hyperparameter_search_vision'):\n"
        "    t = load_dag(dag_id).get_task('train_wave_1'); print(dag_id, t.operator_class.__name__, t.pool)\n"
        "import sys; print('HEAVY=' + ','.join(m for m in ('torch', 'optuna', 'great_expectations') if m in sys.modules))"
    )
    for executor, operator in (("subprocess", "TrainOperator"), ("kubernetes", "TrainerPodOperator")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "TRAINYARD_EXECUTOR": executor}).stdout
        assert f"hyperparameter_search {operator} trainyard-default" in out
        assert f"hyperparameter_search_vision {operator} trainyard-vision" in out
        assert "HEAVY=\n" in out + "\n"


def test_tensorboard_shows_every_trial_of_the_study_side_by_side_named_by_number_status_and_parameters(resumed_study):
    from steps.training.contract import parse_epochs_jsonl

    store, record = resumed_study.store, resumed_study.record
    trained = [t for t in record.trials if store.exists(RunLayout(t.run_key).train.metrics)]
    assert {t.status for t in trained} >= {"completed"} and len(trained) >= 2  # what the user came to compare

    proc, url = start_tensorboard(resumed_study.env, "--study", resumed_study.study_id)
    try:
        deadline = time.monotonic() + TENSORBOARD_START_S
        runs = sorted(get_json(url + "data/runs", deadline, lambda answer: len(answer) >= len(trained)))
        assert len(runs) == len(trained), runs  # every trial that trained, nothing else
        for trial in trained:
            # e.g. trial_1_completed_hash_buckets=64_learning_rate=0.05: number, status and parameters
            values = [f"{name}={value}" for name, value in sorted(trial.params.items())]
            name = f"trial_{trial.number}_{trial.status}_{'_'.join(values)}"
            assert name in runs, runs
            epochs = parse_epochs_jsonl(store.get_bytes(RunLayout(trial.run_key).train.metrics))
            query = urllib.parse.urlencode({"run": name, "tag": "metrics/macro_f1"})
            count = len(epochs)
            points = get_json(f"{url}data/plugin/scalars/scalars?{query}", deadline, lambda a, n=count: len(a) == n)
            assert [value for _, _, value in points] == pytest.approx([e.test_macro_f1 for e in epochs], rel=1e-6)
            assert [step for _, step, _ in points] == [e.epoch for e in epochs]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
