"""Where the seconds around a training go, piece by piece, each in a fresh process as a run starts it.

    .venv/bin/python bench/overhead_profile.py [--repeats 3] [--json profile.json]

Every measurement is the wall time of a new `python` process (medians over interleaved repeats), so
each includes the interpreter's own start, which is measured too (`python -c pass`) to subtract:

- cli_help:          `trainyard --help` (the CLI's own start-up);
- import_airflow:    `import airflow.sdk` (what every task process and the CLI pay);
- import_gx:         `import great_expectations`;
- gx_validate_digits: import GX, build the suites and validate the demo digits dataset
                      (the validate step's work on a snapshot it has not seen);
- import_torch:      `import torch` (the trainer's first second(s));
- trainer_preload:   every module a trainer imports before it reads its job (the warm interpreter's
                      preload, steps/executors/subprocess_executor.py TRAINER_PRELOAD);
- db_migrate_cli:    `airflow db migrate` on a new SQLite home (what `trainyard` ran before);
- db_create_inproc:  trainyard.local_airflow.ensure_airflow_db() on a new SQLite home (what it runs now).

The machine is shared; read the numbers against each other within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
TIMEOUT_S = 900

VALIDATE_DIGITS = (
    "from steps.data.validate import validate_dataset_dir; "
    f"r = validate_dataset_dir({str(PROJECT_ROOT / 'datasets' / 'digits')!r}, 'digits', dataset='digits'); "
    "assert r.success, r.failures"
)
PRELOAD = "from steps.executors.subprocess_executor import TRAINER_PRELOAD; import importlib; " \
          "[importlib.import_module(m) for m in TRAINER_PRELOAD]"


def commands(home: Path) -> dict[str, list[str]]:
    return {
        "python_pass": [PYTHON, "-c", "pass"],
        "cli_help": [str(BIN / "trainyard"), "--help"],
        "import_airflow": [PYTHON, "-c", "import airflow.sdk"],
        "import_gx": [PYTHON, "-c", "import great_expectations"],
        "gx_validate_digits": [PYTHON, "-c", VALIDATE_DIGITS],
        "import_torch": [PYTHON, "-c", "import torch"],
        "trainer_preload": [PYTHON, "-c", PRELOAD],
        "db_migrate_cli": [str(BIN / "airflow"), "db", "migrate"],
        "db_create_inproc": [PYTHON, "-c", "from trainyard.local_airflow import ensure_airflow_db; ensure_airflow_db()"],
    }


def timed(name: str, command: list[str], home: Path) -> float:
    airflow_home = home / name  # a new home each time: the DB commands always create a new DB
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINYARD_", "AIRFLOW"))}
    env.update(TRAINYARD_HOME=str(airflow_home), AIRFLOW_HOME=str(airflow_home / "airflow"),
               PYTHONPATH=str(PROJECT_ROOT))
    (airflow_home / "airflow").mkdir(parents=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{name}: {' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()

    walls: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-profile-") as tmp:
        for repeat in range(args.repeats):
            for name, command in commands(Path(tmp)).items():
                walls.setdefault(name, []).append(round(timed(name, command, Path(tmp) / str(repeat)), 3))
    summary = {name: round(statistics.median(values), 3) for name, values in walls.items()}
    summary_line = {"load_average": os.getloadavg()}
    print(json.dumps({"median_s": summary, **summary_line}, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"median_s": summary, "walls_s": walls, **summary_line}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
