"""How fast `trainyard submit` refuses a bad request, against baselines in the same run.

    .venv/bin/python bench/client_refusal.py [--repeats 9]

Target (issue 16): a parameter out of bounds is refused before any network and without importing
Airflow or the REST client, so the refusal costs at most half of what merely importing the REST
client (apache-airflow-client) costs. Each contender is a fresh interpreter, interleaved across
repeats; medians, as the machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from targets import Target, times, verdict  # bench/, this script's own directory

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.5

CONTENDERS = {
    "python startup (baseline)": [sys.executable, "-c", "pass"],
    "import airflow_client.client (baseline)": [sys.executable, "-c", "import airflow_client.client"],
    "import airflow.sdk": [sys.executable, "-c", "import airflow.sdk"],
    "trainyard submit --epochs 500 (refused)": [
        sys.executable, "-m", "trainyard.cli", "submit", "--dataset", "digits", "--algorithm", "digits-cnn",
        "--epochs", "500", "--airflow", "http://127.0.0.1:9",
    ],
}
REFUSAL = "trainyard submit --epochs 500 (refused)"
CLIENT_IMPORT = "import airflow_client.client (baseline)"


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT)
    elapsed = time.perf_counter() - started
    if argv[1:3] == ["-m", "trainyard.cli"] and done.returncode != 2:
        raise SystemExit(f"expected the refusal (exit 2), got {done.returncode}: {done.stderr.strip()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for argv in CONTENDERS.values():  # warm the page cache once
        timed(argv)
    for _ in range(args.repeats):
        for name, argv in CONTENDERS.items():
            samples[name].append(timed(argv))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, median in medians.items():
        print(f"{name:<42} median {median:6.3f} s  (min {min(samples[name]):.3f}, max {max(samples[name]):.3f})")
    ratio = medians[REFUSAL] / medians[CLIENT_IMPORT]
    if args.json:
        args.json.write_text(json.dumps({"samples_s": samples, "medians_s": medians, "ratio": ratio}, indent=2))
    return verdict("client_refusal", [Target("refusal / importing the REST client", ratio, TARGET_RATIO, at_least=False,
                                             show=times)])


if __name__ == "__main__":
    sys.exit(main())
