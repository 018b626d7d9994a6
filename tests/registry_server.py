"""Pytest fixtures: a real CNCF distribution registry (Debian's docker-registry) on loopback.

`oci_registry` is open; `oci_registry_token_auth` demands bearer tokens from a small token
server started here, which signs JWTs with a throwaway key and refuses wrong credentials.
Both offer `push_test_image`, which writes a one-layer OCI image layout and pushes it with skopeo.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from steps.hashing import sha256_bytes
from steps.images.image_digest import RegistryCredentials
from tests.ports import PortInUse, start_on_a_free_port

REGISTRY_BIN = Path("/usr/bin/docker-registry")
READY_TIMEOUT_S = 120.0
TOKEN_SERVICE = "trainyard-test-registry"
TOKEN_ISSUER = "trainyard-test-token-server"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class LocalRegistry:
    host: str  # 127.0.0.1:<port>, as it appears in image references
    credentials: RegistryCredentials | None
    work_dir: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def push_test_image(self, repo: str, tag: str, payload: bytes) -> str:
        """Push a one-layer image whose only file holds `payload`; return skopeo's manifest digest."""
        layout = Path(tempfile.mkdtemp(prefix="oci-layout-", dir=self.work_dir))
        _write_oci_layout(layout, tag, payload)
        digest_file = layout / "pushed.digest"
        command = [
            "skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
            "--digestfile", str(digest_file),
        ]
        if self.credentials is not None:
            command += ["--dest-creds", f"{self.credentials.username}:{self.credentials.password}"]
        command += [f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}:{tag}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"skopeo push of {repo}:{tag} failed:\n{result.stderr}")
        shutil.rmtree(layout / "blobs")
        return digest_file.read_text().strip()


def _write_oci_layout(layout: Path, tag: str, payload: bytes) -> None:
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def add_blob(data: bytes, media_type: str) -> dict:
        digest = sha256_bytes(data)
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("payload.bin")  # mtime 0: same payload, same digest
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer = add_blob(layer_buf.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    config = add_blob(
        json.dumps({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        }).encode(),
        "application/vnd.oci.image.config.v1+json",
    )
    manifest = add_blob(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}).encode(),
        OCI_MANIFEST,
    )
    manifest["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))


def _start_registry(work_dir: Path, auth_yaml: str = "") -> tuple[subprocess.Popen, int]:
    """The registry and its port (another port if the first is taken before it binds)."""
    if not REGISTRY_BIN.exists():
        pytest.fail(f"{REGISTRY_BIN} missing; run scripts/registry.sh install")
    return start_on_a_free_port(lambda port: (_start_registry_on(work_dir, port, auth_yaml), port), "docker-registry")


def _start_registry_on(work_dir: Path, port: int, auth_yaml: str) -> subprocess.Popen:
    storage = work_dir / "storage"
    storage.mkdir(exist_ok=True)
    config = work_dir / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: {secrets.token_hex(16)}\n"
        + auth_yaml
    )
    log = open(work_dir / "registry.log", "wb")
    process = subprocess.Popen([str(REGISTRY_BIN), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            # Any HTTP answer (200 open, 401 with auth) means the API is serving: ours, if it is still alive.
            requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            if process.poll() is None:
                return process
        except requests.RequestException:
            pass  # not up yet, or another process holds the port and does not answer HTTP
        if process.poll() is not None:
            if "address already in use" in (work_dir / "registry.log").read_text(errors="replace"):
                raise PortInUse(f"docker-registry: port {port} is taken")
            pytest.fail(f"docker-registry exited:\n{(work_dir / 'registry.log').read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"docker-registry not serving after {READY_TIMEOUT_S}s:\n{(work_dir / 'registry.log').read_text()}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("oci-registry")
    process, port = _start_registry(work_dir)
    yield LocalRegistry(host=f"127.0.0.1:{port}", credentials=None, work_dir=work_dir)
    _stop(process)


class _TokenServer:
    """The registry's token service (distribution "token" auth): Basic credentials in, signed JWT out."""

    def __init__(self, credentials: RegistryCredentials, work_dir: Path) -> None:
        self.credentials = credentials
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_bundle = work_dir / "token-root.pem"
        self.cert_bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def issue(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        claims = {
            "iss": TOKEN_ISSUER, "sub": self.credentials.username, "aud": TOKEN_SERVICE,
            "iat": now, "nbf": now - 10, "exp": now + 300, "jti": secrets.token_hex(8), "access": access,
        }
        # x5c lets the registry check the signature against its rootcertbundle.
        x5c = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": x5c})

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if url.path != "/token" or query.get("service") != [TOKEN_SERVICE]:
                    return self._reply(400, {"error": "unknown service"})
                if self.headers.get("Authorization") != _basic(server.credentials):
                    return self._reply(401, {"error": "invalid credentials"})
                token = server.issue([s for value in query.get("scope", []) for s in value.split(" ")])
                self._reply(200, {"token": token, "access_token": token, "expires_in": 300})

            def _reply(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output quiet
                pass

        return Handler


def _basic(credentials: RegistryCredentials) -> str:
    return "Basic " + base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()


@pytest.fixture(scope="session")
def oci_registry_token_auth(tmp_path_factory):
    """A registry that answers 401 + `WWW-Authenticate: Bearer` and trusts only our token server."""
    work_dir = tmp_path_factory.mktemp("oci-registry-token")
    credentials = RegistryCredentials(username="trainer", password=secrets.token_urlsafe(16))
    tokens = _TokenServer(credentials, work_dir)
    tokens.thread.start()
    auth_yaml = (
        "auth:\n  token:\n"
        f"    realm: {tokens.realm}\n"
        f"    service: {TOKEN_SERVICE}\n"
        f"    issuer: {TOKEN_ISSUER}\n"
        f"    rootcertbundle: {tokens.cert_bundle}\n"
    )
    process, port = _start_registry(work_dir, auth_yaml)
    yield LocalRegistry(host=f"127.0.0.1:{port}", credentials=credentials, work_dir=work_dir)
    _stop(process)
    tokens.server.shutdown()
    tokens.server.server_close()
