"""Why a trainer process ended, as a failure kind and one readable line (the kinds of
steps/lifecycle/run_failure.py): the exit code and the log's last lines are all an executor or the pod
operator has. Part of the contract (docs/trainer-contract.md, exit codes)."""
from __future__ import annotations

from dataclasses import dataclass

from steps.training.contract import EXIT_DIVERGED
from steps.training.watchdog import ERROR_PREFIX, stall_from_exit


@dataclass(frozen=True)
class TrainerExit:
    kind: str  # deadline, diverged, stalled, trainer-exit
    reason: str  # one line, the trainer's own words where it said something


def last_error_line(log_lines: list[str]) -> str | None:
    for line in reversed(log_lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX) :].strip()
    return None


def classify_exit(algorithm: str, exit_code: int, log_lines: list[str], *, timed_out: bool = False, where: str = "") -> TrainerExit:
    if timed_out:
        return TrainerExit("deadline", f"trainer {algorithm!r} exceeded its deadline{where}")
    said = last_error_line(log_lines)
    if exit_code == EXIT_DIVERGED:
        return TrainerExit("diverged", f"trainer {algorithm!r} {said or 'diverged (non-finite loss)'}")
    stall = stall_from_exit(exit_code, log_lines)
    if stall is not None:
        return TrainerExit("stalled", f"trainer {algorithm!r} {stall}{where}")
    return TrainerExit(
        "trainer-exit", f"trainer {algorithm!r} exited with code {exit_code}{where}" + (f": {said}" if said else "")
    )
