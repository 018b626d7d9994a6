"""Early stopping's saving, and what the study DAG costs per trial, against baselines in the same run.

    .venv/bin/python bench/hyperparameter_search.py [--trials 16] [--parallel 2] [--seed 7] [--json out.json]

Runs the real hyperparameter_search DAG twice on digits-cnn (by default) (dag.test() on the embedded defaults,
the subprocess executor), same seed and sampler: once with the median stopping rule at the study's
defaults (min_trials 3, the algorithm's start_epoch), once with no early stopping (the baseline).
Target (issue 14): >= 30% fewer trainer epochs in total with the best objective within 0.01 of the
baseline's; the last line says which target was missed and by how much (exit 1). Also reported: each trial's overhead, the train
task's wall time minus the trainer's own (task start, trainer process start and imports, reading
the result), as medians and as a ratio to the trainer's time. dag.test() runs a wave's trials one
after another, so the study's wall time is not a parallel one.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from targets import Target, percent, verdict  # noqa: E402  (bench/, this script's own directory)


def run_study(conf: dict) -> dict:
    from steps.lifecycle.plan import run_key_for
    from steps.store import open_store
    from steps.tuning.study_record import load_study_record
    from trainyard.local_airflow import ensure_airflow_db, load_dag
    from trainyard.settings import Settings

    ensure_airflow_db()
    dag = load_dag("hyperparameter_search")
    started = datetime.now(UTC)
    wall = time.perf_counter()
    dagrun = dag.test(run_conf=conf, logical_date=started, run_after=started)
    wall_s = time.perf_counter() - wall
    state = str(dagrun.state).split(".")[-1].lower()
    if state != "success":
        raise SystemExit(f"study run ended {state}")
    store = open_store(Settings.load().store)
    record = load_study_record(store, run_key_for(dag.dag_id, dagrun.run_id))
    overheads, trainer_s = [], []
    for ti in dagrun.get_task_instances():
        ran = ti.map_index >= 0 and ti.start_date is not None and ti.end_date is not None
        if not ti.task_id.startswith("train_wave_") or not ran or not str(ti.state).endswith("success"):
            continue  # skipped waves have no trials; a failed trial has no trainer time
        # A fresh study trains every trial of wave k, in order: map index i is trial (k-1)*parallel + i.
        number = (int(ti.task_id.removeprefix("train_wave_")) - 1) * conf["parallel_trials"] + ti.map_index
        trainer_wall_s = record.trial(number).wall_time_s or 0.0
        overheads.append((ti.end_date - ti.start_date).total_seconds() - trainer_wall_s)
        trainer_s.append(trainer_wall_s)
    best = record.trial(record.best_trial) if record.best_trial is not None else None
    return {
        "study_id": record.study_id,
        "dag_wall_s": round(wall_s, 1),
        "epochs_trained": record.epochs_trained,
        "epoch_budget": record.epochs * len(record.trials),
        "statuses": {s: sum(t.status == s for t in record.trials) for s in ("completed", "pruned", "failed")},
        "best_objective": best.objective if best else None,
        "best_trial": record.best_trial,
        "trainer_s_total": round(sum(trainer_s), 1),
        "trial_overhead_s_median": round(statistics.median(overheads), 2),
        "trainer_s_median": round(statistics.median(trainer_s), 2),
        "trials_timed": len(overheads),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--algorithm", default="digits-cnn")
    parser.add_argument("--epochs", type=int, help="every trial's epochs (default: the algorithm's)")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--min-trials", type=int, help="default: the study's (3)")
    parser.add_argument("--start-epoch", type=int, help="default: the algorithm's (config/algorithms.yaml), else 2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="trainyard-bench-tuning-"))
    os.environ["TRAINYARD_HOME"] = str(home)
    os.environ["TRAINYARD_STORE"] = "local"
    os.environ["TRAINYARD_STORE_ROOT"] = str(home / "store")
    os.environ["AIRFLOW_HOME"] = str(home / "airflow")
    common = {"dataset": args.dataset, "algorithm": args.algorithm, "epochs": args.epochs,
              "max_trials": args.trials, "parallel_trials": args.parallel,
              "sampler": args.sampler, "seed": args.seed, "min_trials": args.min_trials, "start_epoch": args.start_epoch}
    load_before = os.getloadavg()[0]
    common = {name: value for name, value in common.items() if value is not None}
    baseline = run_study({**common, "pruner": "none"})
    median = run_study({**common, "pruner": "median"})
    saved = 1 - median["epochs_trained"] / baseline["epochs_trained"]
    gap = baseline["best_objective"] - median["best_objective"]
    results = {"baseline_no_stopping": baseline, "median_stopping": median, "epochs_saved": round(saved, 3),
               "best_objective_gap": round(gap, 4), "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)]}
    for name, study in (("no early stopping (baseline)", baseline), ("median stopping rule", median)):
        print(f"{name}: {study['epochs_trained']}/{study['epoch_budget']} epochs, {study['statuses']}, "
              f"best macro_f1 {study['best_objective']:.4f} (trial {study['best_trial']}), DAG {study['dag_wall_s']}s, "
              f"trainers {study['trainer_s_total']}s; per trial: overhead {study['trial_overhead_s_median']}s vs "
              f"trainer {study['trainer_s_median']}s (medians of {study['trials_timed']})")
    print(f"load average {results['load_average'][0]} at start, {results['load_average'][1]} at the end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return verdict("hyperparameter_search", [
        Target("epochs saved by early stopping", saved, 0.30, at_least=True, show=percent),
        Target("best objective gap to the baseline", gap, 0.01, at_least=False, show="{:.4f}".format),
    ])


if __name__ == "__main__":
    sys.exit(main())
