"""`trainyard submit`, `status`, `logs`, `cancel`, `runs`, `backfill`: a running Trainyard, driven
through Airflow's REST API (trainyard.client). The URL comes from --airflow or TRAINYARD_AIRFLOW_URL;
credentials from TRAINYARD_AIRFLOW_USERNAME / TRAINYARD_AIRFLOW_PASSWORD or a prompt, never from
the command line. Errors are one line with an exit code per kind (trainyard/client/errors.py)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any

from steps.lifecycle.bounds import BOUNDS

EXIT_OK = 0


def _connect(args):
    import trainyard.client

    return trainyard.client.connect(args.airflow)


def _interruptible(command: Callable[[Any], int]) -> Callable[[Any], int]:
    """Ctrl-C while watching stops the watching, never the run."""

    @wraps(command)
    def run(args) -> int:
        from trainyard.client.errors import EXIT_INTERRUPTED

        try:
            return command(args)
        except KeyboardInterrupt:
            print("\ntrainyard: stopped watching; the run goes on in Airflow", file=sys.stderr)
            return EXIT_INTERRUPTED

    return run


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, json.loads(raw)  # numbers, true/false, lists; anything else stays text
    except ValueError:
        return key, raw


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _watch_run(client, run_id: str, dag_id: str | None, poll_s: float) -> int:
    from trainyard.client.errors import EXIT_RUN_FAILED
    from trainyard.client.render import changes, status_lines

    previous = None
    final = None
    for status in client.watch(run_id, dag_id=dag_id, poll_s=poll_s):
        for line in changes(previous, status):
            print(line, flush=True)
        previous = final = status
    assert final is not None
    print("\n".join(status_lines(final)))
    return EXIT_OK if final.state == "success" else EXIT_RUN_FAILED


# -- commands ------------------------------------------------------------------
def cmd_submit(args) -> int:
    from trainyard.client.submit import TRAINING_DAG, check_conf

    conf = {k: v for k, v in {
        "dataset": args.dataset, "algorithm": args.algorithm, "model_name": args.model_name, "epochs": args.epochs,
        "learning_rate": args.learning_rate, "batch_size": args.batch_size, "seed": args.seed,
    }.items() if v is not None}
    conf.update(dict(args.param or []))
    dag_id = args.dag or TRAINING_DAG
    check_conf(dag_id, conf)  # refused here, before the REST client is even imported
    client = _connect(args)
    run = client.submit_run(dag_id, conf, run_id=args.run_id, unpause=args.unpause)
    print(f"submitted {run.dag_id} run {run.run_id}")
    print(f"  {run.url}")
    if not args.watch:
        print(f"  follow it: trainyard status {run.run_id} --watch")
        return EXIT_OK
    return _watch_run(client, run.run_id, run.dag_id, args.poll_s)


def cmd_status(args) -> int:
    from trainyard.client.errors import EXIT_RUN_FAILED
    from trainyard.client.render import status_lines

    client = _connect(args)
    if args.watch:
        return _watch_run(client, args.run_id, args.dag, args.poll_s)
    status = client.status(args.run_id, dag_id=args.dag)
    print("\n".join(status_lines(status)))
    return EXIT_RUN_FAILED if status.state == "failed" else EXIT_OK


def cmd_logs(args) -> int:
    client = _connect(args)
    for line in client.logs(args.run_id, args.task, dag_id=args.dag, try_number=args.try_number, follow=args.follow):
        print(line, flush=args.follow)
    return EXIT_OK


def cmd_cancel(args) -> int:
    from trainyard.client.render import cancel_lines

    client = _connect(args)
    result = client.cancel(args.run_id, dag_id=args.dag, confirm_timeout_s=args.confirm_timeout_s)
    print("\n".join(cancel_lines(result)))
    return EXIT_OK


def cmd_runs(args) -> int:
    from trainyard.client.render import run_rows

    client = _connect(args)
    runs = client.runs(dataset=args.dataset, state=args.state, dag_id=args.dag, limit=args.limit)
    if not runs:
        print(f"no runs on {client.url} match")
        return EXIT_OK
    print("\n".join(run_rows(runs)))
    return EXIT_OK


def cmd_backfill(args) -> int:
    from trainyard.client.errors import EXIT_RUN_FAILED, EXIT_WEIGHTS_MISMATCH
    from trainyard.client.render import backfill_date_line, backfill_lines
    from trainyard.client.submit import check_conf

    conf = dict(args.param or [])
    check_conf(args.dag, conf)
    client = _connect(args)
    backfill_id, dates = client.backfill(args.dag, args.from_day, args.to_day, replay=args.replay,
                                         reprocess=args.reprocess, conf=conf, unpause=args.unpause)
    print(f"backfill {backfill_id} of {args.dag}: {len(dates)} date(s): {', '.join(d.date().isoformat() for d in dates)}")
    if not args.watch:
        return EXIT_OK
    report = None
    for report in client.watch_backfill(backfill_id, dates, poll_s=args.poll_s):
        if not report.completed:
            print("  " + "  ".join(f"{row.day} {row.state}" for row in report.dates), flush=True)
    assert report is not None
    print("\n".join(backfill_lines(report)))
    if any(row.weights_mismatch for row in report.dates):
        print("\n".join(backfill_date_line(r) for r in report.dates if r.weights_mismatch), file=sys.stderr)
        return EXIT_WEIGHTS_MISMATCH
    return EXIT_RUN_FAILED if any(row.state != "success" for row in report.dates) else EXIT_OK


# -- arguments -----------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--airflow", metavar="URL",
                        help="Airflow api-server URL (default: $TRAINYARD_AIRFLOW_URL); credentials come from "
                             "$TRAINYARD_AIRFLOW_USERNAME/$TRAINYARD_AIRFLOW_PASSWORD or a prompt")
    return common


def _run_ref(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's id, as `submit` or `runs` printed it (required)")
    parser.add_argument("--dag", help="the run's DAG (default: found by RUN_ID across all DAGs)")


def _bounded(name: str) -> str:
    bounds = BOUNDS[name]
    low = f">{bounds['exclusiveMinimum']}" if "exclusiveMinimum" in bounds else f">={bounds['minimum']}"
    return f"range: {low}, <={bounds['maximum']}"


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type for counts and intervals that must be above zero, as their --help says."""

    def parse(text: str) -> Any:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error: 'invalid float value'
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    from trainyard.client.choices import REPLAY_MODES, REPROCESS_BEHAVIORS, RUN_STATES

    common = _common()
    p = sub.add_parser("submit", parents=[common],
                       help="trigger training_pipeline (or --dag) on a running Airflow; prints the run id and its UI link")
    p.add_argument("--dataset", help="catalog name of the dataset (required for training_pipeline)")
    p.add_argument("--algorithm", help="registered algorithm (required for training_pipeline)")
    p.add_argument("--model-name", help="registry name (default: <dataset>-<algorithm>)")
    p.add_argument("--epochs", type=int,
                   help=f"passes over the training split ({_bounded('epochs')}; default: the algorithm registry's)")
    p.add_argument("--learning-rate", type=float,
                   help=f"Adam step size ({_bounded('learning_rate')}; default: the algorithm registry's)")
    p.add_argument("--batch-size", type=int,
                   help=f"examples per step ({_bounded('batch_size')}; default: the algorithm registry's)")
    p.add_argument("--seed", type=int, help=f"training seed ({_bounded('seed')}; default: the DAG's)")
    p.add_argument("--param", type=_param, action="append", metavar="KEY=VALUE",
                   help="any other DAG parameter (VALUE parsed as JSON when it is JSON); repeatable (default: none)")
    p.add_argument("--dag", help="the DAG to trigger (default: training_pipeline)")
    p.add_argument("--run-id", help="the run id (default: submit__<UTC time>-<random>)")
    p.add_argument("--unpause", action="store_true", help="unpause the DAG first if it is paused (default: refuse)")
    p.add_argument("--watch", action="store_true", help="then watch the run to its end (exit 1 if it fails; default: return once submitted)")
    p.add_argument("--poll-s", type=_positive(float), default=3.0, help="seconds between polls while watching (default 3; range: > 0)")
    p.set_defaults(func=_interruptible(cmd_submit))

    p = sub.add_parser("status", parents=[common],
                       help="a run's task states, the trainer's epoch and metrics, why it failed, what it registered")
    _run_ref(p)
    p.add_argument("--watch", action="store_true", help="print changes as they happen until the run ends (default: print once)")
    p.add_argument("--poll-s", type=_positive(float), default=3.0, help="seconds between polls while watching (default 3; range: > 0)")
    p.set_defaults(func=_interruptible(cmd_status))

    p = sub.add_parser("logs", parents=[common], help="a run's task logs (every task's, or --task's)")
    _run_ref(p)
    p.add_argument("--task", help="one task, e.g. train (default: every task that has started)")
    p.add_argument("--try", dest="try_number", type=_positive(int), help="that try of --task (default: the latest; range: >= 1)")
    p.add_argument("--follow", action="store_true", help="keep printing as the task writes, until it ends (default: print what is there)")
    p.set_defaults(func=_interruptible(cmd_logs))

    p = sub.add_parser("cancel", parents=[common], help="stop a run: Airflow kills its tasks, a running trainer stops")
    _run_ref(p)
    p.add_argument("--confirm-timeout-s", type=_positive(float), default=90.0,
                   help="how long to wait for the train step to record that its trainer stopped (default 90; range: > 0)")
    p.set_defaults(func=_interruptible(cmd_cancel))

    p = sub.add_parser("runs", parents=[common], help="recent runs of Trainyard's DAGs, newest first")
    p.add_argument("--dataset", help="only runs that train this dataset (default: any)")
    p.add_argument("--state", choices=RUN_STATES, help="only runs in this state (default: any)")
    p.add_argument("--dag", help="only this DAG's runs (default: every DAG tagged trainyard)")
    p.add_argument("--limit", type=_positive(int), default=20, help="at most this many runs (default 20; range: >= 1)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("backfill", parents=[common],
                       help="backfill a DAG over dates and watch it; per date, the model version and whether weights matched")
    p.add_argument("--dag", required=True, help="the DAG to backfill, e.g. scheduled_retraining (required)")
    p.add_argument("--from", dest="from_day", type=_day, required=True, metavar="DATE", help="first date, YYYY-MM-DD (required)")
    p.add_argument("--to", dest="to_day", type=_day, required=True, metavar="DATE", help="last date, included, YYYY-MM-DD (required)")
    p.add_argument("--replay", choices=REPLAY_MODES,
                   help="dates with a registered model: exact replay of its manifest, or its data on today's trainer "
                        "(default: the DAG's, exact)")
    p.add_argument("--reprocess", choices=REPROCESS_BEHAVIORS, default="none",
                   help="dates that already have a run: none skips them, failed re-runs failed ones, completed re-runs all "
                        "(default none)")
    p.add_argument("--param", type=_param, action="append", metavar="KEY=VALUE", help="a DAG parameter for every run; repeatable (default: none)")
    p.add_argument("--unpause", action="store_true", help="unpause the DAG first if it is paused (default: refuse)")
    p.add_argument("--no-watch", dest="watch", action="store_false", help="create the backfill and return (default: watch it to its end)")
    p.add_argument("--poll-s", type=_positive(float), default=5.0, help="seconds between polls while watching (default 5; range: > 0)")
    p.set_defaults(func=_interruptible(cmd_backfill))
