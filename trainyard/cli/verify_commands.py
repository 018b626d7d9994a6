"""`trainyard verify`: re-hash a model, a dataset snapshot or the whole store against what manifests
pin, print each corrupt object and what references it, and optionally restore snapshot blobs from
their source directory. The checking itself is steps/lifecycle/verify.py."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainyard.cli.context import load_settings, open_configured_store
from trainyard.cli.errors import EXIT_CORRUPT, EXIT_OK


def _source_finder(settings, override: str | None):
    """dataset name -> its source directory: --source, else the catalog's entry (None if unknown)."""
    from steps.catalog.catalog import Catalog, UnknownName

    if override:
        return lambda _dataset: Path(override)
    catalog = Catalog.load(settings.datasets_catalog, settings.algorithms_catalog)

    def find(dataset: str) -> Path | None:
        try:
            return catalog.dataset(dataset).source
        except (UnknownName, ValueError):
            return None

    return find


def cmd_verify(args) -> int:
    from steps.lifecycle.verify import repair_from_source, verify_all, verify_dataset, verify_model
    from steps.store import validate_name

    chosen = [bool(args.model_ref), bool(args.dataset), args.all]
    if sum(chosen) != 1:
        raise ValueError("name exactly one of: MODEL[@VERSION], --dataset DATASET[@HASH], --all")
    if args.source and not args.dataset:
        raise ValueError("--source goes with --dataset (which dataset's directory it is)")
    settings = load_settings()
    store = open_configured_store(settings)
    if args.model_ref:
        name, _, version_text = args.model_ref.partition("@")
        if version_text and not version_text.isdigit():
            raise ValueError(f"verify takes MODEL (every version) or MODEL@N, not {args.model_ref!r}")
        report = verify_model(store, validate_name("model", name), int(version_text) if version_text else None)
    elif args.dataset:
        dataset, _, hash_prefix = args.dataset.partition("@")
        report = verify_dataset(store, dataset, hash_prefix or None)
    else:
        report = verify_all(store)
    if args.repair_from_source and report.corrupt:
        report = repair_from_source(store, report, _source_finder(settings, args.source))
    for line in report.lines():
        print(line, file=sys.stdout if report.ok else sys.stderr)
    if not report.ok and not args.repair_from_source and any("snapshot" in r for c in report.corrupt for r in c.referenced_by):
        print("snapshot blobs can be restored from their source directory: add --repair-from-source", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_CORRUPT


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="re-hash a model, a snapshot or the whole store; exit 4 if anything is corrupt",
        description="Re-read stored objects and check each against the sha256 recorded when it was written and "
                    "the sha256 its manifest pins. Prints each corrupt object and what references it (other "
                    "versions sharing the same content included). Nothing is changed unless --repair-from-source.",
    )
    p.add_argument("model_ref", nargs="?", metavar="MODEL[@VERSION]",
                   help="a model (every version) or one version, with the snapshots they were trained on "
                        "(default: none; name one of MODEL, --dataset, --all)")
    p.add_argument("--dataset", metavar="DATASET[@HASH]",
                   help="a dataset's snapshots, or one snapshot by its hash or a unique prefix of it (default: none)")
    p.add_argument("--all", action="store_true", help="every object in the store (default: off)")
    p.add_argument("--repair-from-source", action="store_true",
                   help="restore corrupt or missing snapshot blobs from the dataset's source directory, only where "
                        "the source file still has exactly the snapshotted bytes (default: off)")
    p.add_argument("--source", metavar="DIR",
                   help="the dataset's source directory for --repair-from-source (default: its catalog entry)")
    p.set_defaults(func=cmd_verify)
