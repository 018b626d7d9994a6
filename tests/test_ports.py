"""Servers the tests start take another port when theirs was taken before they could bind it
(other engineers' and CI's servers share this machine's loopback ports)."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

import tests.ports as ports


@contextmanager
def a_port_taken_first(monkeypatch) -> Iterator[int]:
    """Hand out a port another process is listening on, once, then free ones as usual."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        handed_out = iter([taken])
        real_free_port = ports.free_port
        monkeypatch.setattr(ports, "free_port", lambda: next(handed_out, None) or real_free_port())
        yield taken


@pytest.mark.minio
def test_a_minio_server_whose_port_was_taken_starts_on_another(tmp_path, monkeypatch):
    from tests.minio_server import start_minio_server

    with a_port_taken_first(monkeypatch) as taken:
        server = start_minio_server(tmp_path)
        try:
            assert server.port != taken
            assert requests.get(f"{server.url}/minio/health/ready", timeout=10).status_code == 200
        finally:
            server.stop()


@pytest.mark.registry
def test_a_registry_whose_port_was_taken_starts_on_another(tmp_path, monkeypatch):
    from tests.registry_server import _start_registry, _stop

    with a_port_taken_first(monkeypatch) as taken:
        process, port = _start_registry(tmp_path)
        try:
            assert port != taken and process.poll() is None
            assert requests.get(f"http://127.0.0.1:{port}/v2/", timeout=10).status_code == 200
        finally:
            _stop(process)
