"""`trainyard run` and `trainyard demo`: training_pipeline in-process on an embedded Airflow."""
from __future__ import annotations

import argparse
import json
import sys

from trainyard.cli.context import load_settings, open_configured_store


def cmd_run(args) -> int:
    from steps.lifecycle.plan import parse_request
    from steps.training.shape import MAX_NODES
    from trainyard.local_airflow import configure_airflow_env, run_dag

    if args.nodes is not None and 1 < args.nodes <= MAX_NODES:  # an executor that cannot run it: say so before Airflow loads
        from steps.executors.base import refuse_unsupported_shape
        from steps.training.shape import TrainingShape

        refuse_unsupported_shape(load_settings().executor, TrainingShape(nodes=args.nodes))

    conf = {k: v for k, v in {
        "dataset": args.dataset, "algorithm": args.algorithm, "model_name": args.model_name,
        "epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size, "seed": args.seed,
        "nodes": args.nodes, "procs_per_node": args.procs_per_node,
    }.items() if v is not None}
    configure_airflow_env()
    from operators.params import training_params

    defaults = {name: param.value for name, param in training_params().items() if param.value is not None}
    parse_request({**defaults, **conf})  # same bounds as the form: fail before Airflow starts
    run = run_dag("training_pipeline", conf)
    return report_run(run)


def report_run(run) -> int:
    from steps.lifecycle.model_registry import load_manifest
    from steps.lifecycle.plan import run_key_for
    from steps.lifecycle.register import RegisteredVersion
    from steps.store.run_layout import RunLayout

    print(f"\nDAG {run.dag_id} run {run.run_id}: {run.state} in {run.wall_time_s:.1f}s")
    if run.state != "success":
        print(f"failed tasks: {', '.join(run.failed_tasks) or 'unknown'} (see the task log above)", file=sys.stderr)
        return 1
    store = open_configured_store(load_settings())
    layout = RunLayout(run_key_for(run.dag_id, run.run_id))
    registered = RegisteredVersion.model_validate_json(store.get_bytes(layout.registered))
    manifest = load_manifest(store, registered.model_name, registered.version)
    m = manifest.metrics
    trainer_wall = json.loads(store.get_bytes(layout.train.result))["wall_time_s"]
    print(f"registered model {registered.model_name}@{registered.version} (champion: {registered.champion})")
    if manifest.world_size > 1:
        print(f"trained on {manifest.shape.describe()}, backend {manifest.backend}")
    if not registered.champion:
        print(f"not champion: {registered.champion_reason}")
    print(f"metrics accuracy={m.accuracy:.4f} macro_f1={m.macro_f1:.4f} loss={m.loss:.4f} on {m.n_examples} test examples")
    print(f"evaluation: {manifest.evaluation.reason}")
    print(f"manifest {registered.store_location}/{registered.manifest_key}")
    print(f"weights_sha256 {manifest.weights_sha256}")
    print(f"wall time: DAG {run.wall_time_s:.1f}s, trainer {trainer_wall:.1f}s")
    return 0


def cmd_demo(args) -> int:
    args.dataset, args.algorithm = "digits", "digits-cnn"
    for name in ("model_name", "epochs", "learning_rate", "batch_size", "seed", "nodes", "procs_per_node"):
        setattr(args, name, None)
    return cmd_run(args)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run training_pipeline locally (Airflow dag.test on SQLite)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--algorithm", required=True)
    p.add_argument("--model-name")
    p.add_argument("--epochs", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--nodes", type=int, help="machines to train on (default: the algorithm's; >1 needs container or kubernetes)")
    p.add_argument("--procs-per-node", type=int, help="data-parallel processes per node, started by torchrun")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run training_pipeline on the digits demo with embedded defaults")
    p.set_defaults(func=cmd_demo)
