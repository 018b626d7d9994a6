"""The `trainyard` console script: snapshot, run, reproduce, lineage, models."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path


def _settings():
    from trainyard.settings import Settings

    return Settings.load()


def _store(settings):
    from steps.store import open_store

    return open_store(settings.store)


def cmd_snapshot(args) -> int:
    from steps.catalog import Catalog
    from steps.snapshot import snapshot_dataset
    from steps.stat_cache import StatCache

    settings = _settings()
    store = _store(settings)
    source = Path(args.source) if args.source else Catalog.load(
        settings.datasets_catalog, settings.algorithms_catalog
    ).dataset(args.dataset).source
    with StatCache() as cache:
        outcome = snapshot_dataset(
            store, args.dataset, source,
            as_of=date.fromisoformat(args.as_of) if args.as_of else None,
            verify=args.verify, cache=cache,
        )
    snap = outcome.snapshot
    print(f"dataset_hash {snap.dataset_hash}")
    print(f"files {len(snap.files)}  size_bytes {snap.total_size_bytes}  partitions {','.join(snap.partitions) or '-'}")
    print(f"hashed {outcome.files_hashed}  blobs_uploaded {outcome.blobs_uploaded}  bytes_uploaded {outcome.bytes_uploaded}")
    print(f"snapshot {store.location}/{snap.key}" + ("" if outcome.created else " (already stored)"))
    return 0


def cmd_run(args) -> int:
    from steps.plan import parse_request
    from trainyard.local_airflow import configure_airflow_env, run_dag

    conf = {k: v for k, v in {
        "dataset": args.dataset, "algorithm": args.algorithm, "model_name": args.model_name,
        "epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size, "seed": args.seed,
    }.items() if v is not None}
    configure_airflow_env()
    from operators.params import training_params

    defaults = {name: param.value for name, param in training_params().items() if param.value is not None}
    parse_request({**defaults, **conf})  # same bounds as the form: fail before Airflow starts
    run = run_dag("training_pipeline", conf)
    return _report_run(run)


def _report_run(run) -> int:
    from steps.models import load_manifest
    from steps.plan import run_key_for
    from steps.register import RegisteredVersion

    print(f"\nDAG {run.dag_id} run {run.run_id}: {run.state} in {run.wall_time_s:.1f}s")
    if run.state != "success":
        print(f"failed tasks: {', '.join(run.failed_tasks) or 'unknown'} (see the task log above)", file=sys.stderr)
        return 1
    store = _store(_settings())
    run_key = run_key_for(run.dag_id, run.run_id)
    registered = RegisteredVersion.model_validate_json(store.get_bytes(f"runs/{run_key}/registered.json"))
    manifest = load_manifest(store, registered.model_name, registered.version)
    m = manifest.metrics
    trainer_wall = json.loads(store.get_bytes(f"runs/{run_key}/train/result.json"))["wall_time_s"]
    print(f"registered model {registered.model_name}@{registered.version} (champion: {registered.champion})")
    print(f"metrics accuracy={m.accuracy:.4f} macro_f1={m.macro_f1:.4f} loss={m.loss:.4f} on {m.n_examples} test examples")
    print(f"evaluation: {manifest.evaluation.reason}")
    print(f"manifest {registered.store_location}/{registered.manifest_key}")
    print(f"weights_sha256 {manifest.weights_sha256}")
    print(f"wall time: DAG {run.wall_time_s:.1f}s, trainer {trainer_wall:.1f}s")
    return 0


def cmd_reproduce(args) -> int:
    from steps.executors.factory import make_executor
    from steps.models import resolve_model_ref
    from steps.reproduce import reproduce_model

    settings = _settings()
    manifest = resolve_model_ref(_store(settings), args.model_ref)
    if manifest.trainer.code_sha256:
        kind = "subprocess"
    else:  # a digest-pinned trainer: run that image locally, even where training runs on Kubernetes
        kind = "container"
    executor = make_executor(kind, container_runtime=settings.container_runtime)
    report, _ = reproduce_model(manifest, executor, settings.store)
    print(report.summary())
    return 0 if report.weights_match else 3


def cmd_lineage(args) -> int:
    from steps.lineage import lineage_lines
    from steps.models import resolve_model_ref

    store = _store(_settings())
    manifest = resolve_model_ref(store, args.model_ref)
    if args.json:
        print(manifest.model_dump_json(indent=2))
    else:
        print("\n".join(lineage_lines(store, manifest)))
    return 0


def cmd_models(args) -> int:
    from steps.models import list_models, load_manifest, read_alias, registered_versions

    store = _store(_settings())
    names = [args.name] if args.name else list_models(store)
    if not names:
        print(f"no models registered in {store.location}")
    for name in names:
        champion = read_alias(store, name)
        print(f"{name}  (champion: {champion.version if champion else '-'})")
        for version in registered_versions(store, name):
            m = load_manifest(store, name, version)
            print(f"  @{version}  {m.created_at[:19]}  acc={m.metrics.accuracy:.4f}  f1={m.metrics.macro_f1:.4f}  "
                  f"data={m.dataset.dataset_hash[:12]}  trainer={m.trainer.pinned_reference[:30]}")
    return 0


def cmd_demo(args) -> int:
    args.dataset, args.algorithm = "digits", "digits-cnn"
    for name in ("model_name", "epochs", "learning_rate", "batch_size", "seed"):
        setattr(args, name, None)
    return cmd_run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainyard", description="Reproducible model training on Airflow.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("snapshot", help="snapshot a dataset into the store and print its hash")
    p.add_argument("dataset", help="dataset name (catalog entry, or any name with --source)")
    p.add_argument("--source", help="directory to snapshot (default: the catalog's source)")
    p.add_argument("--as-of", help="include only dt=YYYY-MM-DD partitions up to this date")
    p.add_argument("--verify", action="store_true", help="re-read every file, ignoring the stat cache")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("run", help="run training_pipeline locally (Airflow dag.test on SQLite)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--algorithm", required=True)
    p.add_argument("--model-name")
    p.add_argument("--epochs", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run training_pipeline on the digits demo with embedded defaults")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("reproduce", help="retrain MODEL@VERSION from its manifest; exit 3 if weights differ")
    p.add_argument("model_ref", metavar="MODEL@VERSION")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("lineage", help="print MODEL@VERSION's lineage chain")
    p.add_argument("model_ref", metavar="MODEL@VERSION")
    p.add_argument("--json", action="store_true", help="print the whole manifest")
    p.set_defaults(func=cmd_lineage)

    p = sub.add_parser("models", help="list models and their versions")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from steps.store import StoreError

    try:
        return args.func(args)
    except (ValueError, LookupError, StoreError, RuntimeError) as exc:
        print(f"trainyard: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
