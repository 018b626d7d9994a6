"""`trainyard tensorboard`: TensorBoard on the event files of registered models and runs, side by side."""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from trainyard.cli.context import open_configured_store


def _sources(store, args):
    """Every run the arguments select: named runs and models, each study's trials, and --all-runs."""
    from steps.lifecycle.run_refs import all_run_event_sources, event_sources_for
    from steps.tuning.study_event_sources import study_event_sources

    sources = event_sources_for(store, args.refs, dag_id=args.dag)
    studies = list(dict.fromkeys(args.study))
    for study_id in studies:
        sources += study_event_sources(store, study_id, prefix_study_id=len(studies) > 1)
    if args.all_runs:
        # A study's trial is not shown a second time under its run key.
        shown = {s.label for s in sources} | {s.events_key for s in sources}
        sources += [s for s in all_run_event_sources(store) if s.label not in shown and s.events_key not in shown]
    return sources


def cmd_tensorboard(args) -> int:
    from steps.monitoring.tensorboard_logdir import TensorBoardLogdir, start_tensorboard

    if not args.refs and not args.all_runs and not args.study:
        raise ValueError("name at least one MODEL@VERSION, MODEL, RUN_KEY or RUN_ID, or pass --study STUDY_ID or --all-runs")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0-65535, got {args.port}")
    if not args.refresh_s > 0:
        raise ValueError(f"--refresh-s must be > 0, got {args.refresh_s:g}")
    store = open_configured_store()
    sources = _sources(store, args)
    with tempfile.TemporaryDirectory(prefix="trainyard-tensorboard-") as scratch:
        root = Path(args.logdir) if args.logdir else Path(scratch)
        logdir = TensorBoardLogdir(store, root)
        logdir.add(sources)
        url = start_tensorboard(root, host=args.host, port=args.port)
        labels = ", ".join(s.label for s in sources) or "(no runs yet)"
        print(f"TensorBoard at {url} showing: {labels}", flush=True)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.wait(args.refresh_s):
            try:
                fetched = logdir.add(_sources(store, args))
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not take the board down; say it
                print(f"trainyard: warning: refresh failed: {exc}", file=sys.stderr, flush=True)
                continue
            if fetched:
                print(f"refreshed: {', '.join(fetched)}", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tensorboard",
        help="start TensorBoard on the (verified) event files of models and runs, side by side",
        description="Fetch the TensorBoard event files of the named models and runs from the store (sha256-"
        "verified), start TensorBoard on them and print its URL. Runs until interrupted; every --refresh-s "
        "seconds it fetches what changed, so a run that is still training keeps moving.",
    )
    p.add_argument("refs", nargs="*", metavar="REF",
                   help="MODEL@VERSION, MODEL (its champion), a run key, or an Airflow run id of --dag")
    p.add_argument("--study", action="append", default=[], metavar="STUDY_ID",
                   help="also every trial of this hyperparameter study (`trainyard study`), each named by its number, "
                   "status and parameters; repeatable (default: none)")
    p.add_argument("--all-runs", action="store_true", help="also every run in the store that wrote events (default: only the named ones)")
    p.add_argument("--dag", default="training_pipeline", help="DAG whose run ids REF may name (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=None,
                   help="port to listen on; 0 = any free port (default: 6006, or the next free one; range: 0-65535)")
    p.add_argument("--refresh-s", type=float, default=30.0,
                   help="seconds between fetches of changed event files (default: %(default)s; range: > 0)")
    p.add_argument("--logdir", help="keep the fetched files in this directory (default: a temporary one)")
    p.set_defaults(func=cmd_tensorboard)
