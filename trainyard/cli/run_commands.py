"""`trainyard run` and `trainyard demo`: training_pipeline in-process on an embedded Airflow.

Everything that can be refused from the catalog (names, schema fit, bounds, the model name, the
dataset's directory) is refused before Airflow is imported, which alone takes seconds."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from trainyard.cli.context import load_settings, open_configured_store
from trainyard.cli.errors import EXIT_OK, EXIT_RUN_FAILED

DAG_ID = "training_pipeline"
MODEL_NAMES_HELP = (
    "A model is named <dataset>-<algorithm> (e.g. digits-digits-cnn) unless --model-name says otherwise; "
    "each run registers its next version, MODEL@1, MODEL@2, ..., and MODEL alone means its champion."
)


def _range(name: str) -> str:
    from steps.lifecycle.bounds import BOUNDS

    b = BOUNDS[name]
    low = f"> {b['exclusiveMinimum']}" if "exclusiveMinimum" in b else f">= {b['minimum']}"
    return f"{low} and <= {b['maximum']}"


def check_run_request(conf: dict):
    """The request as the DAG's plan step will see it, refused here if it cannot run."""
    from steps.catalog.catalog import Catalog
    from steps.lifecycle.plan import BadRequest, check_request, parse_request

    settings = load_settings()
    request = parse_request(conf)
    dataset, *_ = check_request(request, Catalog.load(settings.datasets_catalog, settings.algorithms_catalog))
    if not dataset.source.is_dir():
        raise BadRequest(f"dataset {dataset.name!r}: its source {dataset.source} is not a directory (config/datasets.yaml)")
    return request


def cmd_run(args) -> int:
    if args.model_name is not None and not args.model_name.strip():
        from steps.lifecycle.plan import BadRequest

        raise BadRequest("--model-name is empty; leave it out for the default name <dataset>-<algorithm>")
    conf = {k: v for k, v in {
        "dataset": args.dataset, "algorithm": args.algorithm, "model_name": args.model_name,
        "epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size, "seed": args.seed,
        "checkpoint_every": args.checkpoint_every, "stall_timeout_s": args.stall_timeout_s,
        "nodes": args.nodes, "procs_per_node": args.procs_per_node, "force": args.force or None,
    }.items() if v is not None}
    request = check_run_request(conf)  # before Airflow starts: the same words as the form, in well under a second
    if request.nodes is not None and request.nodes > 1:  # an executor that cannot run it: say so before Airflow loads
        from steps.executors.base import refuse_unsupported_shape
        from steps.training.shape import TrainingShape

        refuse_unsupported_shape(load_settings().executor, TrainingShape(nodes=request.nodes))
    from trainyard.cli.run_output import output_to_log, run_log_path
    from trainyard.local_airflow import (
        configure_airflow_env,
        exit_now,
        preview_training_run,
        run_dag,
        warm_interpreters,
    )

    configure_airflow_env()
    log_path = run_log_path(DAG_ID)
    print(f"running {DAG_ID} on an embedded Airflow; full log: {log_path}", flush=True)
    with output_to_log(log_path), warm_interpreters(preview_training_run(request, load_settings())):
        run = run_dag(DAG_ID, conf)
    exit_now(report_run(run, log_path))
    return EXIT_OK  # not reached: exit_now ends the process without tearing the interpreter down


def report_run(run, log_path) -> int:
    from steps.lifecycle.model_registry import load_manifest
    from steps.lifecycle.plan import run_key_for
    from steps.lifecycle.register import RegisteredVersion
    from steps.lifecycle.run_failure import read_failures
    from steps.store.run_layout import RunLayout
    from trainyard.cli.run_output import failure_paragraph

    store = open_configured_store(load_settings())
    layout = RunLayout(run_key_for(run.dag_id, run.run_id))
    if run.state != "success":
        print("\n" + failure_paragraph(run, read_failures(store, layout.run_key), log_path), file=sys.stderr)
        return EXIT_RUN_FAILED
    registered = RegisteredVersion.model_validate_json(store.get_bytes(layout.registered))
    manifest = load_manifest(store, registered.model_name, registered.version)
    m = manifest.metrics
    ref = f"{registered.model_name}@{registered.version}"
    print(f"\nDAG {run.dag_id} run {run.run_id}: {run.state} in {run.wall_time_s:.1f}s")
    if registered.reused:
        print(f"reused model {ref} (champion: {registered.champion}): it was trained with this run's training "
              f"identity {registered.training_identity_sha256}; nothing was trained (--force trains anyway)")
    else:
        print(f"registered model {ref} (champion: {registered.champion})")
    if manifest.world_size > 1:
        print(f"trained on {manifest.shape.describe()}, backend {manifest.backend}")
    if not registered.champion and registered.champion_reason:
        print(f"not champion: {registered.champion_reason}")
    print(f"metrics accuracy={m.accuracy:.4f} macro_f1={m.macro_f1:.4f} loss={m.loss:.4f} on {m.n_examples} test examples")
    print(f"evaluation: {manifest.evaluation.reason}")
    print(f"manifest {registered.store_location}/{registered.manifest_key}")
    print(f"weights_sha256 {manifest.weights_sha256}")
    if registered.reused:
        print(f"wall time: DAG {run.wall_time_s:.1f}s, trainer not run")
    else:
        trainer_wall = json.loads(store.get_bytes(layout.train.result))["wall_time_s"]
        print(f"wall time: DAG {run.wall_time_s:.1f}s, trainer {trainer_wall:.1f}s")
    print(f"full log: {log_path}")
    prog = _invoked_as()
    next_commands = {
        f"{prog} models": "every model, its versions and champion, files re-hashed",
        f"{prog} lineage {ref} --verify": "its data, trainer, run and metrics; files checked",
        f"{prog} reproduce {ref}": "retrain from the manifest and compare weights",
    }
    width = max(map(len, next_commands))
    print("\nnext:")
    for command, what in next_commands.items():
        print(f"  {command:{width}}  # {what}")
    return EXIT_OK


def _invoked_as() -> str:
    """How to type this command again: `trainyard` if that is what PATH finds, else the path used."""
    invoked = Path(sys.argv[0])
    if invoked.name != "trainyard":  # python -m trainyard.cli
        return "trainyard"
    found = shutil.which("trainyard")
    if found and Path(found).resolve() == invoked.resolve():
        return "trainyard"
    return str(invoked)


def cmd_demo(args) -> int:
    args.dataset, args.algorithm = "digits", "digits-cnn"
    for name in ("model_name", "epochs", "learning_rate", "batch_size", "seed", "checkpoint_every", "stall_timeout_s",
                 "nodes", "procs_per_node"):
        setattr(args, name, None)
    args.force = False
    return cmd_run(args)


def register(sub: argparse._SubParsersAction) -> None:
    from steps.lifecycle.bounds import DEFAULT_SEED

    registry = "the algorithm's default in config/algorithms.yaml"
    p = sub.add_parser(
        "run", help="run training_pipeline locally (Airflow dag.test on SQLite)",
        description="Snapshot, validate, train, evaluate and register, as the training_pipeline DAG, in this "
                    "process. " + MODEL_NAMES_HELP,
    )
    p.add_argument("--dataset", required=True, metavar="NAME", help="dataset to train on: a name in config/datasets.yaml (required)")
    p.add_argument("--algorithm", required=True, metavar="NAME",
                   help="training algorithm: a name in config/algorithms.yaml whose schema fits the dataset (required)")
    p.add_argument("--model-name", metavar="NAME",
                   help="registry name (default: <dataset>-<algorithm>); 1-63 of a-z, 0-9, '.', '_', '-'")
    p.add_argument("--epochs", type=int, metavar="N",
                   help=f"passes over the training split (default: {registry}; range: {_range('epochs')})")
    p.add_argument("--learning-rate", type=float, metavar="X",
                   help=f"Adam step size (default: {registry}; range: {_range('learning_rate')})")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help=f"examples per step (default: {registry}; range: {_range('batch_size')})")
    p.add_argument("--seed", type=int, metavar="N",
                   help=f"seeds torch, numpy, random and data order (default: {DEFAULT_SEED}; range: {_range('seed')})")
    p.add_argument("--checkpoint-every", type=int, metavar="EPOCHS",
                   help="epochs between checkpoints a retried trainer resumes from, 0 = none "
                        f"(default: {registry}; range: {_range('checkpoint_every')})")
    p.add_argument("--stall-timeout-s", type=int, metavar="SECONDS",
                   help="stop (and retry) a trainer that finishes no batch for this long, 0 = never "
                        f"(default: {registry}; range: {_range('stall_timeout_s')})")
    p.add_argument("--force", action="store_true",
                   help="train even when a registered version was already trained with this exact trainer, data, "
                        "hyperparameters and seeds (default: reuse that version and train nothing)")
    p.add_argument("--nodes", type=int, metavar="N",
                   help=f"machines to train on; more than 1 needs the container or kubernetes executor "
                        f"(default: {registry}; range: {_range('nodes')})")
    p.add_argument("--procs-per-node", type=int, metavar="N",
                   help=f"data-parallel processes per node, started by torchrun (default: {registry}; "
                        f"range: {_range('procs_per_node')})")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run training_pipeline on the digits demo with embedded defaults",
                       description="`trainyard run --dataset digits --algorithm digits-cnn` with the registry's "
                                   "defaults; registers digits-digits-cnn.")
    p.set_defaults(func=cmd_demo)
