"""Loopback ports for the servers the tests start, without pick-then-release races.

A server started on a port from free_port() may find it taken by then (other engineers' and
CI's servers share this machine), so start_on_a_free_port() retries with a new port when the
server says so. unused_port() holds a port bound, not listening, for as long as a test needs
an address where nothing answers.
"""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
PORT_ATTEMPTS = 5


class PortInUse(RuntimeError):
    """The server could not bind its port: another process holds it."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_on_a_free_port(start: Callable[[int], T], what: str) -> T:
    """start(port) until one binds; start raises PortInUse when the port was taken meanwhile."""
    for _attempt in range(PORT_ATTEMPTS):
        try:
            return start(free_port())
        except PortInUse:
            continue
    raise RuntimeError(f"{what}: {PORT_ATTEMPTS} ports in a row were taken before it could bind one")


@contextmanager
def unused_port() -> Iterator[int]:
    """A loopback port bound by this process but not listening: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
