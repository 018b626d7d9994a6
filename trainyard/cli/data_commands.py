"""`trainyard snapshot`: snapshot a dataset into the store."""
from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from trainyard.cli.context import load_settings, open_configured_store


def cmd_snapshot(args) -> int:
    from steps.catalog.catalog import Catalog
    from steps.data.snapshot import snapshot_dataset
    from steps.data.stat_cache import StatCache

    settings = load_settings()
    store = open_configured_store(settings)
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("snapshot", help="snapshot a dataset into the store and print its hash")
    p.add_argument("dataset", help="dataset name (catalog entry, or any name with --source)")
    p.add_argument("--source", help="directory to snapshot (default: the catalog's source)")
    p.add_argument("--as-of", help="include only dt=YYYY-MM-DD partitions up to this date")
    p.add_argument("--verify", action="store_true", help="re-read every file, ignoring the stat cache")
    p.set_defaults(func=cmd_snapshot)
