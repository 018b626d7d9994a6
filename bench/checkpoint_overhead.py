"""What checkpointing every epoch costs the trainer, against the same trainer without checkpoints, in one run.

    .venv/bin/python bench/checkpoint_overhead.py [--repeats 7] [--algorithm digits-cnn] [--store local|minio]

Target (issue 15): checkpointing every epoch costs <= 5% of the trainer's wall time on digits-cnn.
Both contenders run the real trainer through the subprocess executor with the algorithm registry's
hyperparameters on the full digits dataset, alternating (so load drifts hit both alike); each run gets
a run key of its own, so nothing resumes. Medians of:

- the trainer's own wall time (TrainerResult.wall_time_s: from reading the contract to writing the result),
- the whole trainer process as the executor sees it (interpreter and torch import included),
- the trainer process's CPU time (user + system), which a shared machine's load moves far less than wall time.

It also times the checkpoint itself, in this process, on the algorithm's real training state (model and
optimizer after a step), median of 25: what the training loop waits for (serialising the state to
scratch) and the whole save (upload, marker, pruning; in the trainer it overlaps the next epoch).

Both also check that the weights are the same with and without checkpoints. --store minio uses the
TRAINYARD_MINIO_* settings of the environment (a server you started); the default is a temporary local store.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from targets import Target, percent, verdict  # noqa: E402  (bench/, this script's own directory)

from steps.catalog.catalog import Catalog  # noqa: E402
from steps.data.snapshot import snapshot_dataset  # noqa: E402
from steps.executors.subprocess_executor import SubprocessExecutor  # noqa: E402
from steps.lifecycle.plan import parse_request, plan_run  # noqa: E402
from steps.lifecycle.train import training_job  # noqa: E402
from steps.project_root import PROJECT_ROOT  # noqa: E402
from steps.store import StoreSettings, open_store  # noqa: E402

TARGET_RATIO = 0.05
SAVES = 25


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def checkpoint_save_s(store, algorithm: str, hyperparameters: dict, scratch: Path) -> tuple[float, float, float, int]:
    """Median seconds the loop waits for one checkpoint, of the whole save, its CPU seconds; and its size."""
    import importlib.util

    import torch

    from steps.store.run_layout import RunLayout
    from steps.training.checkpoint import CheckpointStore
    from steps.training.contract import EpochRecord
    from steps.training.determinism import configure_determinism
    from steps.training.training_state import new_training_state

    spec = importlib.util.spec_from_file_location("bench_trainer", PROJECT_ROOT / "images" / algorithm / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    trainer = next(v() for v in vars(module).values() if isinstance(v, type) and getattr(v, "name", None) == algorithm)
    configure_determinism(7, 1, "cpu")
    state = new_training_state(trainer.build_model(hyperparameters, 10), hyperparameters, seed=7, device="cpu")
    for parameter in state.model.parameters():  # one step, so the optimizer holds its full state
        parameter.grad = torch.ones_like(parameter)
    state.optimizer.step()
    checkpoints = CheckpointStore(store, RunLayout("bench-save").train, "bench-save", "0" * 64, scratch, keep=2)
    waited, whole, cpu = [], [], []
    for epoch in range(1, SAVES + 1):
        state.end_epoch(EpochRecord(epoch=epoch, train_loss=1.0, wall_time_s=1.0))
        started, cpu_started = time.perf_counter(), time.thread_time()
        pending = checkpoints.snapshot(state)
        waited.append(time.perf_counter() - started)
        checkpoints.publish(pending)
        whole.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - cpu_started)
    size = max(store.stat(k).size_bytes for k in store.list_keys(RunLayout("bench-save").train.checkpoints_prefix))
    return statistics.median(waited), statistics.median(whole), statistics.median(cpu), size


def _plan(catalog: Catalog, algorithm: str, checkpoint_every: int):
    entry = catalog.algorithm(algorithm)
    dataset = next(name for name, d in catalog.datasets.items() if d.schema_name == entry.schema_name)
    defaults = entry.defaults
    request = parse_request({
        "dataset": dataset, "algorithm": algorithm, "epochs": defaults["epochs"], "learning_rate": defaults["learning_rate"],
        "batch_size": defaults["batch_size"], "seed": 7, "checkpoint_every": checkpoint_every,
    })
    return plan_run(request, catalog, dag_id="bench", airflow_run_id=f"ckpt{checkpoint_every}-{uuid.uuid4().hex[:8]}",
                    logical_date=None, executor="subprocess", split_seed=20260101, test_fraction=0.2, num_threads=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--algorithm", default="digits-cnn")
    parser.add_argument("--store", choices=("local", "minio"), default="local")
    parser.add_argument("--json", help="also write every measurement here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-checkpoints-") as tmp:
        if args.store == "local":
            settings = StoreSettings(backend="local", root=str(Path(tmp) / "store"))
        else:
            import os

            settings = StoreSettings.from_env({**os.environ, "TRAINYARD_STORE": "minio"})
        store = open_store(settings)
        catalog = Catalog.load(PROJECT_ROOT / "config" / "datasets.yaml", PROJECT_ROOT / "config" / "algorithms.yaml")
        dataset = catalog.dataset(_plan(catalog, args.algorithm, 0).dataset)
        dataset_hash = snapshot_dataset(store, dataset.name, dataset.source).snapshot.dataset_hash
        executor = SubprocessExecutor()
        runs: dict[int, list[dict]] = {0: [], 1: []}
        for repeat in range(args.repeats):
            for every in (0, 1) if repeat % 2 == 0 else (1, 0):
                plan = _plan(catalog, args.algorithm, every)
                started, cpu_before = time.perf_counter(), _children_cpu_s()
                result = executor.run(training_job(plan, dataset_hash), plan.image, settings, deadline_s=3600)
                process_s, cpu_s = time.perf_counter() - started, _children_cpu_s() - cpu_before
                runs[every].append({"trainer_s": result.wall_time_s, "process_s": process_s, "cpu_s": cpu_s,
                                    "epochs": result.epochs_completed, "weights_sha256": result.weights_sha256})
                print(f"repeat {repeat + 1}/{args.repeats} checkpoint_every={every}: trainer {result.wall_time_s:.2f}s, "
                      f"process {process_s:.2f}s, cpu {cpu_s:.2f}s", flush=True)
        waited_s, save_s, save_cpu_s, save_bytes = checkpoint_save_s(store, args.algorithm, _plan(catalog, args.algorithm, 1).hyperparameters,
                                               Path(tmp))

    weights = {r["weights_sha256"] for rs in runs.values() for r in rs}
    summary: dict = {}
    for name in ("trainer_s", "process_s", "cpu_s"):
        none = statistics.median(r[name] for r in runs[0])
        every = statistics.median(r[name] for r in runs[1])
        # Each repeat ran both back to back: the median of the pairs' ratios resists load drifting between repeats.
        paired = statistics.median(b[name] / a[name] - 1 for a, b in zip(runs[0], runs[1], strict=True))
        summary[name] = {"no_checkpoints": none, "every_epoch": every, "overhead": (every - none) / none,
                         "paired_overhead": paired}
    epochs = runs[1][0]["epochs"]
    trainer_none = summary["trainer_s"]["no_checkpoints"]
    trainer_cpu = summary["cpu_s"]["no_checkpoints"]
    summary["save"] = {"loop_waits_s": waited_s, "whole_save_s": save_s, "save_cpu_s": save_cpu_s, "size_bytes": save_bytes,
                       "cpu_share_of_trainer_process": save_cpu_s * epochs / trainer_cpu,
                       "loop_share_of_trainer": waited_s * epochs / trainer_none,
                       "whole_share_of_trainer": save_s * epochs / trainer_none}
    print()
    print(f"{args.algorithm}, {epochs} epochs, {args.repeats} alternating repeats, store {args.store}, medians:")
    for name, label in (("trainer_s", "trainer wall time"), ("process_s", "trainer process wall time"),
                        ("cpu_s", "trainer process CPU time")):
        s = summary[name]
        print(f"  {label:<26} no checkpoints {s['no_checkpoints']:.2f}s  every epoch {s['every_epoch']:.2f}s  "
              f"overhead {s['overhead']:+.1%} (median of paired ratios {s['paired_overhead']:+.1%})")
    print(f"  one checkpoint ({save_bytes:,} bytes, median of {SAVES}): the loop waits {waited_s * 1000:.1f} ms, "
          f"the whole save takes {save_s * 1000:.1f} ms; x {epochs} epochs = {summary['save']['loop_share_of_trainer']:.1%} "
          f"(whole: {summary['save']['whole_share_of_trainer']:.1%}) of the median trainer wall time without checkpoints")
    print(f"  CPU of one whole save: {save_cpu_s * 1000:.1f} ms; x {epochs} epochs = "
          f"{summary['save']['cpu_share_of_trainer_process']:.1%} of the trainer process's CPU time")
    print(f"  same weights with and without checkpoints: {len(weights) == 1}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))
    return verdict("checkpoint_overhead", [
        Target("checkpointing's share of the trainer's wall time", summary["trainer_s"]["overhead"], TARGET_RATIO,
               at_least=False, show=percent),
        Target.holds("same weights with and without checkpoints", len(weights) == 1),
    ])


if __name__ == "__main__":
    sys.exit(main())
