"""`trainyard reproduce`, `lineage` and `models`: the model registry, read and re-checked."""
from __future__ import annotations

import argparse
import sys

from trainyard.cli.context import load_settings, open_configured_store
from trainyard.cli.errors import EXIT_CORRUPT, EXIT_NOT_REPRODUCED, EXIT_OK
from trainyard.cli.run_commands import MODEL_NAMES_HELP


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
    print(f"reproducing {manifest.model_name}@{manifest.version}: verifying its files and snapshot against the "
          "manifest, then retraining on CPU ...", flush=True)
    report, _ = reproduce_model(manifest, executor, settings.store, keep_run=args.keep_run)
    print(report.summary())
    return EXIT_OK if report.weights_match else EXIT_NOT_REPRODUCED


def cmd_lineage(args) -> int:
    from steps.lifecycle.lineage import lineage_lines
    from steps.lifecycle.model_registry import resolve_model_ref
    from steps.lifecycle.verify import verify_manifest

    store = open_configured_store()
    manifest = resolve_model_ref(store, args.model_ref)
    report = verify_manifest(store, manifest) if args.verify else None
    if args.json:
        print(manifest.model_dump_json(indent=2))
    else:
        print("\n".join(lineage_lines(store, manifest)))
        if report is None:
            print("  integrity         : not verified (files not re-read; --verify re-hashes them against the manifest)")
        elif report.ok:
            print(f"  integrity         : verified {report.objects_checked} objects (model files and snapshot) "
                  "against the manifest")
        else:
            print(f"  integrity         : CORRUPT ({len(report.corrupt)} objects, listed on stderr)")
    if report is not None and not report.ok:
        print("\n".join(report.lines()), file=sys.stderr)
        return EXIT_CORRUPT
    return EXIT_OK


def _version_line(store, name: str, version: int, verify: bool) -> tuple[str, bool]:
    """One listing line for a version, and whether it verified (a corrupt manifest is a line too)."""
    from steps.lifecycle.model_registry import load_manifest
    from steps.lifecycle.verify import model_pins, verify_pins
    from steps.store import IntegrityError

    try:
        m = load_manifest(store, name, version)
    except IntegrityError as err:
        return f"  @{version}  CORRUPT manifest: {err}", False
    line = (f"  @{version}  {m.created_at[:19]}  acc={m.metrics.accuracy:.4f}  f1={m.metrics.macro_f1:.4f}  "
            f"data={m.dataset.dataset_hash[:12]}  trainer={m.trainer.pinned_reference[:30]}")
    if not verify:
        return line, True
    report = verify_pins(store, model_pins(store, name, version, with_dataset=False), f"{name}@{version}")
    if report.ok:
        return f"{line}  verified", True
    bad = ", ".join(f"{c.key.rsplit('/', 1)[-1]} ({c.problem})" for c in report.corrupt)
    return f"{line}  CORRUPT: {bad}", False


def cmd_models(args) -> int:
    from steps.lifecycle.model_registry import list_models, no_such_model, read_alias, registered_versions

    store = open_configured_store()
    known = list_models(store)
    if args.name and args.name not in known:
        raise no_such_model(store, args.name)
    names = [args.name] if args.name else known
    if not names:
        print(f"no models registered in {store.location}")
    corrupt = []
    for name in names:
        champion = read_alias(store, name)
        print(f"{name}  (champion: {champion.version if champion else '-'})")
        for version in registered_versions(store, name):
            line, ok = _version_line(store, name, version, verify=not args.no_verify)
            print(line, flush=True)
            if not ok:
                corrupt.append(f"{name}@{version}")
    if corrupt:
        print(f"trainyard: {len(corrupt)} version(s) failed verification: {', '.join(corrupt)}; "
              f"`trainyard verify MODEL@VERSION` says what is corrupt and what else it reaches", file=sys.stderr)
        return EXIT_CORRUPT
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    ref_help = "a registered model version, e.g. digits-digits-cnn@3; MODEL alone means its champion"
    p = sub.add_parser(
        "reproduce", help="retrain MODEL@VERSION from its manifest; exit 3 if weights differ",
        description="Verify the version's files and snapshot against its manifest (exit 4 if corrupt: nothing is "
                    "retrained or rewritten), retrain from the manifest on CPU in a scratch run, compare weights "
                    "hashes (exit 3 if they differ), then remove the scratch run. " + MODEL_NAMES_HELP,
    )
    p.add_argument("model_ref", metavar="MODEL@VERSION", help=ref_help)
    p.add_argument("--keep-run", action="store_true",
                   help="keep the scratch run's outputs in the store under runs/reproduce-... (default: removed)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("lineage", help="print MODEL@VERSION's lineage chain",
                       description="Where a version came from: partitions, snapshot, validation, trainer, run, "
                                   "metrics, aliases. " + MODEL_NAMES_HELP)
    p.add_argument("model_ref", metavar="MODEL@VERSION", help=ref_help)
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON (default: the chain as text)")
    p.add_argument("--verify", action="store_true",
                   help="re-hash the version's files and its snapshot against the manifest; exit 4 if one is "
                        "corrupt (default: off, and the output says it did not verify)")
    p.set_defaults(func=cmd_lineage)

    p = sub.add_parser("models", help="list models and their versions",
                       description="Every model (or one), its champion and versions, each version's files "
                                   "re-hashed against its manifest. " + MODEL_NAMES_HELP)
    p.add_argument("name", nargs="?", metavar="MODEL", help="list only this model (default: every model)")
    p.add_argument("--no-verify", action="store_true",
                   help="do not re-read the versions' files (default: off, so each version is verified)")
    p.set_defaults(func=cmd_models)
