"""The `trainyard` console script. Each command group lives in its own module and registers its
subcommands here; commands import steps lazily so `--help` and refusals stay fast. How a command
ends (exit codes, one-line errors) is trainyard/cli/errors.py."""
from __future__ import annotations

import argparse

from trainyard.cli import (
    client_commands,
    data_commands,
    model_commands,
    monitor_commands,
    run_commands,
    tuning_commands,
    verify_commands,
)
from trainyard.cli.errors import EXIT_CODES_HELP, run_command

COMMAND_GROUPS = (
    data_commands,
    run_commands,
    model_commands,
    tuning_commands,
    verify_commands,
    client_commands,
    monitor_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainyard", description="Reproducible model training on Airflow.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)
