"""Why a distributed trainer failed, read from torchrun's own report: which rank died first, with
what exit code, and that rank's last log lines; or which rendezvous never formed.

torchrun ends a failed run with a summary ("Root Cause (first observed failure): rank: 1
(local_rank: 1), exitcode: -9 ...") and prefixes each rank's lines with "[rank<N>]: "
(steps/training/launch.py). Lines of a multi-node run carry "[node<i>] " in front of that.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from steps.executors.base import TrainerFailed
from steps.training.shape import TrainingShape
from steps.training.trainer_exit import classify_exit

LOG_TAIL_LINES = 20
NODE_PREFIX = "[node{index}] "
_NODE_RE = re.compile(r"^\[node(\d+)\] ")
_RANK_RE = re.compile(r"^\[rank(\d+)\]: ")
_RANK_FIELD_RE = re.compile(r"^\s*rank\s*:\s*(\d+) \(local_rank: (\d+)\)")
_EXIT_FIELD_RE = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)(?:.*\((SIG[A-Z0-9]+)\))?")
_TIME_FIELD_RE = re.compile(r"^\s*time\s*:\s*(\S+)")
_RENDEZVOUS_RE = re.compile(r"torch\.distributed\.(?:DistStoreError|DistNetworkError): (.+)")
# A rank that failed only because a peer died first: torchrun's SIGTERM, or gloo seeing the peer go.
_COLLATERAL_EXIT_CODES = (-15,)
_COLLATERAL_TEXT = ("Connection reset by peer", "Connection closed by peer", "Connection refused")


class RankFailed(TrainerFailed):
    """One rank of a distributed trainer died; the whole run failed with it."""


class RendezvousFailed(TrainerFailed):
    """The nodes of a multi-node run never met; a retry may find them all up."""

    failure_kind = "rendezvous"


@dataclass(frozen=True)
class RankExit:
    node: int
    rank: int
    local_rank: int
    exit_code: int
    signal: str | None
    time: str
    collateral: bool


def node_lines(lines: list[str]) -> dict[int, list[str]]:
    """Each node's lines without their "[node<i>] " prefix (a one-node run is all node 0)."""
    by_node: dict[int, list[str]] = {}
    for line in lines:
        match = _NODE_RE.match(line)
        node = int(match.group(1)) if match else 0
        by_node.setdefault(node, []).append(line[match.end() :] if match else line)
    return by_node


def node_log_lines(logs_by_node: Mapping[int, str]) -> list[str]:
    """One log from several nodes' logs (a Kubernetes pod's each), every line marked with its node."""
    return [NODE_PREFIX.format(index=node) + line for node, text in sorted(logs_by_node.items()) for line in text.splitlines()]


def rank_tail(lines: list[str], rank: int, count: int = LOG_TAIL_LINES) -> list[str]:
    own = [line for line in lines if (m := _RANK_RE.match(line)) and int(m.group(1)) == rank]
    return own[-count:]


def _rank_exits(node: int, lines: list[str]) -> list[RankExit]:
    """Every rank failure torchrun reported on one node (its summary lists them all)."""
    exits = []
    when = ""
    for index, line in enumerate(lines):
        if _RANK_RE.match(line):
            continue  # a rank's own output, not torchrun's summary
        if time_match := _TIME_FIELD_RE.match(line):
            when = time_match.group(1)
        rank_match = _RANK_FIELD_RE.match(line)
        if not rank_match:
            continue
        exit_match = next((m for later in lines[index + 1 : index + 3] if (m := _EXIT_FIELD_RE.match(later))), None)
        if exit_match is None:
            continue
        rank, exit_code = int(rank_match.group(1)), int(exit_match.group(1))
        tail = "\n".join(rank_tail(lines, rank))
        collateral = exit_code in _COLLATERAL_EXIT_CODES or any(text in tail for text in _COLLATERAL_TEXT)
        exits.append(RankExit(node, rank, int(rank_match.group(2)), exit_code, exit_match.group(2), when, collateral))
    return exits


def first_failure(lines: list[str]) -> RankExit | None:
    """The rank that died first: one that did not merely see a peer go, earliest by torchrun's clock."""
    exits = [e for node, own in sorted(node_lines(lines).items()) for e in _rank_exits(node, own)]
    return min(exits, key=lambda e: (e.collateral, e.time, e.node, e.rank), default=None)


def rendezvous_problem(lines: list[str]) -> tuple[int, str] | None:
    """(node, torch's words) when a node's torchrun gave up waiting for the others."""
    for node, own in sorted(node_lines(lines).items()):
        for line in own:
            if not _RANK_RE.match(line) and (match := _RENDEZVOUS_RE.search(line)):
                return node, match.group(1).strip()
    return None


def distributed_failure(
    algorithm: str, shape: TrainingShape, lines: list[str], exit_code: int, where: str = ""
) -> TrainerFailed:
    """The one exception a failed torchrun run raises: the rank and its log, or the rendezvous."""
    by_node = node_lines(lines)
    failed = first_failure(lines)
    if failed is not None:
        signal = f" ({failed.signal})" if failed.signal else ""
        place = f"node {failed.node}, local rank {failed.local_rank}" if shape.nodes > 1 else f"local rank {failed.local_rank}"
        tail = rank_tail(by_node.get(failed.node, []), failed.rank) or [f"(rank {failed.rank} wrote no output)"]
        # A rank that stopped for a reason of its own (a diverged loss, on which every rank agrees, or its
        # stall watchdog) fails the run as one process would: the same kind, so the same retry policy.
        ended = classify_exit(algorithm, failed.exit_code, [_RANK_RE.sub("", line) for line in tail], where=where)
        if ended.kind != "trainer-exit":
            return TrainerFailed(f"{ended.reason}\nlast log lines of rank {failed.rank}:\n" + "\n".join(tail),
                                 failure_kind=ended.kind)
        return RankFailed(
            f"trainer {algorithm!r}: rank {failed.rank} of {shape.world_size} ({place}) exited with code "
            f"{failed.exit_code}{signal}{where}; the whole {shape} run failed with it; last log lines of rank "
            f"{failed.rank}:\n" + "\n".join(tail)
        )
    if (problem := rendezvous_problem(lines)) is not None:
        node, words = problem
        return RendezvousFailed(
            f"trainer {algorithm!r}: the {shape.nodes} nodes of a {shape} run did not meet{where}; node {node}: {words}"
        )
    last = "\n".join(lines[-LOG_TAIL_LINES:])
    return TrainerFailed(f"trainer {algorithm!r} ({shape} processes) exited with code {exit_code}{where}; last log lines:\n{last}")
