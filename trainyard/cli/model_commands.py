"""`trainyard reproduce`, `lineage` and `models`: the model registry, read and re-checked."""
from __future__ import annotations

import argparse

from trainyard.cli.context import load_settings, open_configured_store


def cmd_reproduce(args) -> int:
    from steps.executors.factory import make_executor
    from steps.lifecycle.model_registry import resolve_model_ref
    from steps.lifecycle.reproduce import reproduce_model

    settings = load_settings()
    manifest = resolve_model_ref(open_configured_store(settings), args.model_ref)
    if manifest.trainer.code_sha256:
        kind = "subprocess"
    else:  # a digest-pinned trainer: run that image locally, even where training runs on Kubernetes
        kind = "container"
    executor = make_executor(
        kind, container_runtime=settings.container_runtime, rendezvous_timeout_s=settings.rendezvous_timeout_s
    )
    report, _ = reproduce_model(manifest, executor, settings.store)
    print(report.summary())
    return 0 if report.weights_match else 3


def cmd_lineage(args) -> int:
    from steps.lifecycle.lineage import lineage_lines
    from steps.lifecycle.model_registry import resolve_model_ref

    store = open_configured_store()
    manifest = resolve_model_ref(store, args.model_ref)
    if args.json:
        print(manifest.model_dump_json(indent=2))
    else:
        print("\n".join(lineage_lines(store, manifest)))
    return 0


def cmd_models(args) -> int:
    from steps.lifecycle.model_registry import list_models, load_manifest, read_alias, registered_versions

    store = open_configured_store()
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


def register(sub: argparse._SubParsersAction) -> None:
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
