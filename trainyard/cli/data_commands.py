"""`trainyard snapshot`: snapshot a dataset into the store."""
from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from trainyard.cli.context import load_settings, open_configured_store


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


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
        outcome = snapshot_dataset(store, args.dataset, source, as_of=args.as_of, verify=args.verify, cache=cache)
    snap = outcome.snapshot
    print(f"dataset_hash {snap.dataset_hash}")
    print(f"files {len(snap.files)}  size_bytes {snap.total_size_bytes}  partitions {','.join(snap.partitions) or '-'}")
    print(f"hashed {outcome.files_hashed}  blobs_uploaded {outcome.blobs_uploaded}  bytes_uploaded {outcome.bytes_uploaded}")
    stored = "" if outcome.created else " (already stored" + (", every blob re-verified)" if args.verify else ")")
    print(f"snapshot {store.location}/{snap.key}{stored}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("snapshot", help="snapshot a dataset into the store and print its hash",
                       description="Hash a dataset directory (regular files only; links and special files "
                                   "are refused) and store it as an immutable, content-addressed snapshot.")
    p.add_argument("dataset", metavar="DATASET",
                   help="dataset name: an entry of config/datasets.yaml, or any new name with --source")
    p.add_argument("--source", metavar="DIR",
                   help="directory to snapshot (default: the catalog's source for DATASET)")
    p.add_argument("--as-of", metavar="YYYY-MM-DD", type=iso_date,
                   help="include only dt=YYYY-MM-DD partitions up to this date (default: every partition)")
    p.add_argument("--verify", action="store_true",
                   help="re-read every file ignoring the stat cache, and re-hash the stored snapshot's blobs; "
                        "exit 4 if one is corrupt (default: off)")
    p.set_defaults(func=cmd_snapshot)
