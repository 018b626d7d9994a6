"""Data-parallel scaling of the digits CNN on this machine, against baselines in the same run.

    .venv/bin/python bench/distributed_scaling.py [--examples 50000] [--epochs 3] [--repeats 3]

Generates the digits set augmented to >= 50k examples (shifted and noised copies of
scikit-learn's 1,797 images; generated, never committed), snapshots it into a temporary local
store and trains the same CNN, 1 thread per process, with the real trainer and executor:

- `1 process`: the plain trainer (no torchrun): the baseline;
- `DDP, 1 process`: torchrun with one process: DistributedSampler, DDP wrapper, gloo all-reduce
  at world size 1 (target: <= 5% slower than the baseline);
- `DDP, 2 processes`: `--procs-per-node 2` (target: >= 1.6x the baseline's samples/s).

Samples/s per epoch = training examples / the epoch's wall time (which includes each epoch's
evaluation of the test split; sharded across ranks too). Epoch 1 is left out as warm-up.
Variants are interleaved, repeats reported as medians. bench/ddp_step_probe.py adds three
measurements inside one process group: the communication share (step time with the gradient
all-reduce against the same steps under DDP's no_sync()), what the per-batch loss agreement of
the divergence check adds to a step, and the DDP overhead at world size 1
with plain and DDP epochs of the shared loop interleaved in one process, where start-up and the
shared machine's load drift cancel out. Everything measured goes to --json.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from targets import Target, percent, times, verdict  # noqa: E402  (bench/, this script's own directory)

from steps.data.snapshot import snapshot_dataset, snapshot_key  # noqa: E402
from steps.executors.subprocess_executor import SubprocessExecutor  # noqa: E402
from steps.executors.trainer_process import run_trainer_process, trainer_result  # noqa: E402
from steps.images.trainer_image import TrainerImage  # noqa: E402
from steps.store import StoreSettings  # noqa: E402
from steps.store.local import LocalStore  # noqa: E402
from steps.store.run_layout import RunLayout  # noqa: E402
from steps.training.contract import TrainerResult, TrainingJob  # noqa: E402
from steps.training.launch import torchrun_command  # noqa: E402
from steps.training.shape import TrainingShape  # noqa: E402

ENTRYPOINT = "images/digits-cnn/train.py"
VARIANTS = ("1 process", "DDP, 1 process", "DDP, 2 processes")


def augmented_digits(root: Path, examples: int, seed: int = 0) -> Path:
    """Shifted (by -1..1 pixels) and noised copies of the 1,797 digits, in the digits schema."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.int64)  # 8x8, values 0..16
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(examples):
        source = i % len(images)
        dy, dx = rng.integers(-1, 2, size=2)
        image = np.roll(np.roll(images[source], dy, axis=0), dx, axis=1)
        image = np.clip(image + rng.integers(-1, 2, size=image.shape), 0, 16)
        rows.append(f"a{i:06d},{int(digits.target[source])}," + ",".join(map(str, image.ravel())) + "\n")
    partition = root / "dt=2026-01-05"
    partition.mkdir(parents=True)
    (root / "labels.csv").write_text("id,name\n" + "".join(f"{d},{d}\n" for d in range(10)))
    (partition / "examples.csv").write_text("id,label," + ",".join(f"p{i}" for i in range(64)) + "\n" + "".join(rows))
    return root


def job_for(run_id: str, dataset_hash: str, epochs: int, shape: TrainingShape, batch_size: int) -> TrainingJob:
    return TrainingJob(
        run_id=run_id, algorithm="digits-cnn", dataset_name="digits", dataset_hash=dataset_hash,
        dataset_snapshot_key=snapshot_key("digits", dataset_hash), output_prefix=RunLayout(run_id).train.prefix, seed=7, split_seed=20260101,
        test_fraction=0.2, hyperparameters={"epochs": epochs, "learning_rate": 0.005, "batch_size": batch_size},
        num_threads=1, device="cpu", nodes=shape.nodes, procs_per_node=shape.procs_per_node,
    )


def train(variant: str, job: TrainingJob, settings: StoreSettings, scratch: Path) -> TrainerResult:
    executor = SubprocessExecutor()
    image = TrainerImage(algorithm="digits-cnn", image_reference="bench", code_sha256="-", entrypoint=ENTRYPOINT)
    if variant != "DDP, 1 process":
        return executor.run(job, image, settings, deadline_s=7200)
    # The executors start one process without torchrun; here torchrun starts it, to measure DDP itself.
    command = torchrun_command(executor.python, str(ROOT / ENTRYPOINT), job.shape)
    outcome = run_trainer_process(command, env=executor.environment(job, settings, str(scratch)), deadline_s=7200, secrets={})
    return trainer_result(job, outcome, settings)


def samples_per_s(store: LocalStore, job: TrainingJob, result: TrainerResult) -> list[float]:
    epochs = [json.loads(line) for line in store.get_bytes(job.metrics_output_key).decode().splitlines()]
    return [result.train_examples / e["wall_time_s"] for e in epochs[1:]]


def probe(name: str, procs: int, *options: str) -> dict:
    """bench/ddp_step_probe.py under torchrun: rank 0's JSON line."""
    command = torchrun_command(sys.executable, str(ROOT / "bench" / "ddp_step_probe.py"), TrainingShape(procs_per_node=procs))
    done = subprocess.run([*command, name, *options], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, check=True)
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("[rank0]: {")).split(": ", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="per process (the registry's digits-cnn default: %(default)s); the probes keep 64")
    parser.add_argument("--probe-steps", type=int, default=200)
    parser.add_argument("--probe-examples", type=int, default=8000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()
    measured: dict[str, list[float]] = {v: [] for v in VARIANTS}
    weights: dict[str, set[str]] = {v: set() for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        work = Path(tmp)
        store = LocalStore(work / "store")
        settings = StoreSettings(backend="local", root=str(work / "store"))
        snapshot = snapshot_dataset(store, "digits", augmented_digits(work / "digits", args.examples)).snapshot
        shapes = {"1 process": TrainingShape(), "DDP, 1 process": TrainingShape(), "DDP, 2 processes": TrainingShape(procs_per_node=2)}
        for repeat in range(args.repeats):
            for variant in VARIANTS:
                job = job_for(f"bench-{repeat}-{VARIANTS.index(variant)}", snapshot.dataset_hash, args.epochs, shapes[variant],
                              args.batch_size)
                started = time.perf_counter()
                result = train(variant, job, settings, work)
                measured[variant] += samples_per_s(store, job, result)
                weights[variant].add(result.weights_sha256)
                print(f"repeat {repeat + 1}/{args.repeats} {variant:17s} {statistics.median(samples_per_s(store, job, result)):8.0f} "
                      f"samples/s ({result.world_size} x {result.backend}, {time.perf_counter() - started:.0f}s with start-up, "
                      f"{result.train_examples} training examples)", flush=True)
        one, ddp_one, two = (statistics.median(measured[v]) for v in VARIANTS)
        comm_probes = [probe("comm", 2, "--steps", str(args.probe_steps)) for _ in range(args.repeats)]
        agreement_probes = [probe("agreement", 2, "--steps", str(args.probe_steps)) for _ in range(args.repeats)]
        overhead_probes = [probe("overhead", 1, "--examples", str(args.probe_examples)) for _ in range(args.repeats)]
    comm_share = statistics.median(p["exposed_comm_share"] for p in comm_probes)
    in_process_overhead = statistics.median(p["overhead"] for p in overhead_probes)
    agreement = statistics.median(p["agreement_cost"] for p in agreement_probes)
    report = {
        "examples": args.examples, "epochs": args.epochs, "repeats": args.repeats, "batch_size": args.batch_size, "cpus": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "samples_per_s": {v: statistics.median(measured[v]) for v in VARIANTS},
        "speed_up_2_vs_1": two / one, "ddp_world_size_1_overhead": 1 - ddp_one / one,
        "exposed_comm_share_2_processes": comm_share, "ddp_world_size_1_overhead_in_process": in_process_overhead,
        "loss_agreement_cost_2_processes": agreement,
        "comm_probes": comm_probes, "agreement_probes": agreement_probes, "overhead_probes": overhead_probes,
        "reruns_bit_identical": {v: len(w) == 1 for v, w in weights.items()},
    }
    print(f"\nload average {load_before[0]:.1f} before, {report['load_average_after'][0]:.1f} after ({os.cpu_count()} cpus)")
    print(f"2 processes vs 1: {two:.0f} vs {one:.0f} samples/s = {two / one:.2f}x (target >= 1.6x)")
    print(f"DDP at world size 1 vs no DDP: {ddp_one:.0f} vs {one:.0f} samples/s = {100 * (1 - ddp_one / one):+.1f}% slower (target <= 5%)")
    print(f"  the same, in one process, plain and DDP epochs interleaved: {100 * in_process_overhead:+.1f}% slower")
    print(f"2 processes: gradient all-reduce is {100 * comm_share:.1f}% of a training step (exposed, not overlapped)")
    print(f"2 processes: the per-batch loss agreement (divergence check) adds {100 * agreement:+.1f}% to a training step")
    print(f"reruns bit-identical per variant: {report['reruns_bit_identical']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return verdict("distributed_scaling", [
        Target("2 processes vs 1", two / one, 1.6, at_least=True, show=times),
        Target("DDP at world size 1, slower than no DDP by", 1 - ddp_one / one, 0.05, at_least=False, show=percent),
    ])


if __name__ == "__main__":
    sys.exit(main())
