"""How fast `trainyard run` refuses a request it can refuse from the catalog, against baselines
measured in the same run: a bare Python start, `trainyard --help`, and `import airflow.sdk` (what
the refusal path must not pay).

    .venv/bin/python bench/cli_refusal.py [--repeats 9] [--json out.json]

Target (issue 10): an unknown dataset, an unknown algorithm, a schema mismatch and an
out-of-bounds parameter are each refused in well under a second, and far below Airflow's import.
Reports medians over interleaved repeats (the machine is shared and noisy) and CPU seconds, which
load disturbs less than wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TRAINYARD = [PYTHON, "-m", "trainyard.cli"]

CASES = {
    "python -c pass (baseline)": ([PYTHON, "-c", "pass"], 0),
    "trainyard --help": ([*TRAINYARD, "--help"], 0),
    "refuse: unknown dataset": ([*TRAINYARD, "run", "--dataset", "digitz", "--algorithm", "digits-cnn"], 2),
    "refuse: unknown algorithm": ([*TRAINYARD, "run", "--dataset", "digits", "--algorithm", "digit-cnn"], 2),
    "refuse: schema mismatch": ([*TRAINYARD, "run", "--dataset", "intents", "--algorithm", "digits-cnn"], 2),
    "refuse: epochs out of bounds": ([*TRAINYARD, "run", "--dataset", "digits", "--algorithm", "digits-cnn",
                                      "--epochs", "0"], 2),
    "import airflow.sdk (avoided)": ([PYTHON, "-c", "import airflow.sdk"], 0),
}


def measure(command: list[str], expected_rc: int, env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != expected_rc:
        raise SystemExit(f"{command}: exit {proc.returncode}, expected {expected_rc}: {proc.stderr[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = {**os.environ, "TRAINYARD_HOME": str(Path("/tmp") / f"trainyard-bench-{os.getpid()}")}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
    for _ in range(args.repeats):  # interleaved, so load spikes hit every case alike
        for name, (command, rc) in CASES.items():
            samples[name].append(measure(command, rc, env))
    baseline = statistics.median(w for w, _ in samples["python -c pass (baseline)"])
    results = {}
    print(f"load average at the end: {os.getloadavg()[0]:.1f}; {args.repeats} interleaved repeats, medians")
    print(f"{'case':34} {'wall s':>8} {'cpu s':>7} {'wall - baseline':>16}")
    for name, values in samples.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        results[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "over_baseline_s": round(wall - baseline, 3)}
        print(f"{name:34} {wall:8.3f} {cpu:7.3f} {wall - baseline:16.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
