"""The `trainyard` console script. Each command group lives in its own module and registers its
subcommands here; commands import steps lazily so `--help` and refusals stay fast."""
from __future__ import annotations

import argparse
import sys

from trainyard.cli import client_commands, data_commands, model_commands, run_commands

COMMAND_GROUPS = (data_commands, run_commands, model_commands, client_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainyard", description="Reproducible model training on Airflow.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from steps.store import StoreError

    try:
        return args.func(args)
    except (ValueError, LookupError, StoreError, RuntimeError) as exc:
        print(f"trainyard: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)  # the client's errors carry their own (trainyard/client/errors.py)
