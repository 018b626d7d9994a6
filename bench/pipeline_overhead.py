"""Where a `trainyard run` spends its time, against Airflow's own cost, measured in one run.

    .venv/bin/python bench/pipeline_overhead.py [--repeats 3] [--json results.json]

Each repeat, interleaved, on the embedded defaults (SQLite Airflow, local store, subprocess trainer),
every measurement in a fresh process as a user would start it:

- trivial:   a two-task DAG that does nothing (bench/trivial_dag/), through the same
             trainyard.local_airflow.run_dag -> dag.test() path: Airflow's own cost;
- first run: `trainyard run --dataset digits --algorithm digits-cnn` on an empty store
             (validates, trains, evaluates, registers);
- cache hit: the same command again (validation reused, training reused).

Targets (issue 17), as ratios of medians:
  (first-run DAG wall - trainer wall) <= 1.5 x trivial DAG wall
  cache-hit DAG wall                  <= 1.2 x trivial DAG wall
  `trainyard run` process wall        <= its DAG wall + 5 s

The Airflow metadata DBs are created before timing (creating one is timed once, separately, with
--cold). The machine is shared and noisy: medians over interleaved repeats, ratios within this run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from steps.lifecycle.plan import run_key_for  # noqa: E402
from steps.store.local import LocalStore  # noqa: E402
from steps.store.run_layout import RunLayout  # noqa: E402

PYTHON = sys.executable
TRAINYARD = str(Path(PYTHON).with_name("trainyard"))
TRIVIAL_DAGS = PROJECT_ROOT / "bench" / "trivial_dag"
RUN_ARGS = ["run", "--dataset", "digits", "--algorithm", "digits-cnn"]
DAG_LINE = re.compile(r"^DAG (\S+) run (\S+): (\w+) in ([0-9.]+)s", re.MULTILINE)
TRIVIAL_CODE = (
    "import json, sys; from pathlib import Path; from trainyard.local_airflow import run_dag; "
    "run = run_dag('trivial_two_tasks', {}, dags_folder=Path(sys.argv[1])); "
    "print('TRIVIAL ' + json.dumps({'state': run.state, 'wall_time_s': run.wall_time_s, 'run_id': run.run_id}))"
)
TIMEOUT_S = 1800


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINYARD_", "AIRFLOW"))}
    return {**env, "TRAINYARD_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"), **extra}


def timed_process(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def task_seconds(airflow_home: Path, dag_id: str, run_id: str) -> dict[str, float]:
    """Each task's own start-to-end, as Airflow recorded it (skipped tasks never started)."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchall()
    times = {}
    for task_id, start, end in rows:
        if start and end:
            times[task_id] = round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)
    return times


def prepare_home(home: Path, **extra: str) -> float:
    """Create the home's Airflow DB, as the first command a user runs would; returns its wall time."""
    code = "from trainyard.local_airflow import ensure_airflow_db; ensure_airflow_db()"
    wall, _ = timed_process([PYTHON, "-c", code], env_for(home, **extra))
    return wall


def trivial(home: Path) -> dict:
    env = env_for(home, AIRFLOW__CORE__DAGS_FOLDER=str(TRIVIAL_DAGS))
    wall, out = timed_process([PYTHON, "-c", TRIVIAL_CODE, str(TRIVIAL_DAGS)], env)
    result = json.loads(out.split("TRIVIAL ", 1)[1].splitlines()[0])
    return {"process_s": round(wall, 3), "dag_s": round(result["wall_time_s"], 3),
            "tasks": task_seconds(home / "airflow", "trivial_two_tasks", result["run_id"])}


def pipeline(home: Path, store_root: Path, stat_cache: Path) -> dict:
    env = env_for(home, TRAINYARD_STORE="local", TRAINYARD_STORE_ROOT=str(store_root),
                  TRAINYARD_STAT_CACHE=str(stat_cache))
    wall, out = timed_process([TRAINYARD, *RUN_ARGS], env)
    match = DAG_LINE.search(out)
    if match is None or match.group(3) != "success":
        raise RuntimeError(f"trainyard run did not report a successful DAG:\n{out[-3000:]}")
    dag_id, run_id, dag_s = match.group(1), match.group(2), float(match.group(4))
    layout = RunLayout(run_key_for(dag_id, run_id))
    store = LocalStore(store_root)
    registered = json.loads(store.get_bytes(layout.registered))
    trainer_s = json.loads(store.get_bytes(layout.train.result))["wall_time_s"] if not registered.get("reused") else 0.0
    return {"process_s": round(wall, 3), "dag_s": dag_s, "trainer_s": trainer_s, "reused": bool(registered.get("reused")),
            "tasks": task_seconds(home / "airflow", dag_id, run_id)}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time one run in a brand-new home (DB creation)")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="trainyard-bench-overhead-") as tmp:
        work = Path(tmp)
        trivial_home, pipeline_home = work / "trivial-home", work / "pipeline-home"
        db_create_s = prepare_home(trivial_home, AIRFLOW__CORE__DAGS_FOLDER=str(TRIVIAL_DAGS))
        prepare_home(pipeline_home)
        # One unmeasured round: the first start of a process after a DB is created pays one-off costs
        # (page cache, the DAG's first serialization) that no later run pays.
        trivial(trivial_home)
        pipeline(pipeline_home, work / "warm-store", work / "warm-stat.sqlite")

        rounds = []
        for i in range(args.repeats):
            store_root, stat_cache = work / f"store-{i}", work / f"stat-{i}.sqlite"
            measured = {"trivial": trivial(trivial_home)}
            measured["first"] = pipeline(pipeline_home, store_root, stat_cache)
            measured["hit"] = pipeline(pipeline_home, store_root, stat_cache)
            if not measured["hit"]["reused"] or measured["first"]["reused"]:
                raise RuntimeError(f"round {i}: the first run must train and the second reuse it: {measured}")
            rounds.append(measured)
            print(f"round {i + 1}/{args.repeats}: {json.dumps(measured)}", flush=True)
        cold = None
        if args.cold:
            cold_home = work / "cold-home"
            cold = pipeline(cold_home, work / "cold-store", work / "cold-stat.sqlite")

    trivial_dag = median([r["trivial"]["dag_s"] for r in rounds])
    first_overhead = median([r["first"]["dag_s"] - r["first"]["trainer_s"] for r in rounds])
    hit_dag = median([r["hit"]["dag_s"] for r in rounds])
    process_extra = median([r[kind]["process_s"] - r[kind]["dag_s"] for r in rounds for kind in ("first", "hit")])
    summary = {
        "trivial_dag_s": trivial_dag,
        "trivial_process_s": median([r["trivial"]["process_s"] for r in rounds]),
        "first_dag_s": median([r["first"]["dag_s"] for r in rounds]),
        "first_trainer_s": median([r["first"]["trainer_s"] for r in rounds]),
        "first_dag_minus_trainer_s": first_overhead,
        "hit_dag_s": hit_dag,
        "first_ratio": round(first_overhead / trivial_dag, 2),
        "hit_ratio": round(hit_dag / trivial_dag, 2),
        "process_minus_dag_s": process_extra,
        "first_tasks_s": {task: median([r["first"]["tasks"].get(task, 0.0) for r in rounds])
                          for task in rounds[0]["first"]["tasks"]},
        "hit_tasks_s": {task: median([r["hit"]["tasks"].get(task, 0.0) for r in rounds])
                        for task in rounds[0]["hit"]["tasks"]},
        "trivial_tasks_s": {task: median([r["trivial"]["tasks"].get(task, 0.0) for r in rounds])
                            for task in rounds[0]["trivial"]["tasks"]},
        "db_create_s": round(db_create_s, 3),
        "cold_home_run": cold,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(summary, indent=2))
    print(
        f"\nfirst run: (DAG - trainer) {first_overhead:.1f}s = {summary['first_ratio']}x trivial {trivial_dag:.1f}s "
        f"(target <= 1.5x)\ncache hit: DAG {hit_dag:.1f}s = {summary['hit_ratio']}x trivial (target <= 1.2x)\n"
        f"trainyard run process - DAG: {process_extra:.1f}s (target <= 5s)"
    )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
