"""TLS and proxies through the real `run` command, against the sandbox served over HTTPS.

The sandbox's certificate comes from a private CA made here; a forward proxy on 127.0.0.1
tunnels CONNECT requests for ``tiktok.test`` (a name nothing else resolves) to the sandbox. A
guard fails the test if anything but 127.0.0.1 is resolved or reached, so nothing leaves the
machine even if proxying regressed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator.cli import cli
from orchestrator.clock import SystemClock
from orchestrator.sandbox import Sandbox, SandboxConfig
from tests.support.run_support import (
    assert_published_once,
    journal_rows,
    make_clip,
    sandbox_settings,
    sign_in,
    write_manifest,
)

USER = "sandbox-user-1"
PUBLIC_NAME = "tiktok.test"
_CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


@dataclass(frozen=True)
class Pki:
    ca_pem: Path
    server_context: ssl.SSLContext


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _make_pki(folder: Path) -> Pki:
    """A private CA and a server certificate for tiktok.test, localhost and 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("orchestrator test CA"))
        .issuer_name(_name("orchestrator test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(PUBLIC_NAME))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(PUBLIC_NAME),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = folder / "private-ca.pem"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain = folder / "server.pem"
    chain.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return Pki(ca_pem, context)


@dataclass
class ProxyLog:
    """The CONNECT targets the proxy was asked for, in order."""

    targets: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ConnectHandler(socketserver.BaseRequestHandler):
    """A forward proxy that only tunnels: CONNECT host:port goes to 127.0.0.1:port."""

    server: _ProxyServer

    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            block = client.recv(4096)
            if not block:
                return
            head += block
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        with self.server.log.lock:
            self.server.log.targets.append(f"{method} {target}")
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        port = int(target.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(client, upstream)


def _pipe(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    peers = {one: other, other: one}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 10)
        if not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            peers[sock].sendall(data)


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, log: ProxyLog) -> None:
        self.log = log
        super().__init__(("127.0.0.1", 0), _ConnectHandler)


@contextlib.contextmanager
def forward_proxy() -> Iterator[tuple[str, ProxyLog]]:
    log = ProxyLog()
    server = _ProxyServer(log)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class Project:
    sandbox: Sandbox
    folder: Path
    manifest: Path
    digest: str
    env: dict[str, str | None]

    def sandbox_home(self) -> Path:
        home = self.env["ORCHESTRATOR_HOME"]
        assert home is not None
        return Path(home)

    def sandbox_port(self) -> int:
        return int(self.sandbox.base_url.rsplit(":", 1)[1])

    def run(self, **env: str | None) -> Result:
        old = Path.cwd()
        os.chdir(self.folder)
        try:
            return CliRunner().invoke(
                cli, ["run", str(self.manifest), "--no-progress"], env={**self.env, **env}
            )
        finally:
            os.chdir(old)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return _make_pki(tmp_path)


@contextlib.contextmanager
def https_project(tmp_path: Path, pki: Pki, server_name: str | None) -> Iterator[Project]:
    """The sandbox over HTTPS (certificate from the private CA), a signed-in user, one clip."""
    clock = SystemClock()
    config = SandboxConfig(processing_polls=0)
    with Sandbox(config, clock=clock, tls=pki.server_context, server_name=server_name) as sandbox:
        settings = sandbox_settings(sandbox, tmp_path / "home")
        sign_in(settings, sandbox, clock, [USER])
        media = tmp_path / "media"
        media.mkdir()
        clip, digest = make_clip(media, "a.mp4")
        manifest = write_manifest(media, [{"user_id": USER, "video_path": clip.name}])
        env: dict[str, str | None] = {
            "ORCHESTRATOR_HOME": str(settings.home),
            "ORCHESTRATOR_API_BASE": sandbox.base_url,
            "ORCHESTRATOR_AUTH_URL": sandbox.auth_url,
            "TIKTOK_CLIENT_KEY": sandbox.client_key,
            "TIKTOK_CLIENT_SECRET": sandbox.client_secret,
            "NO_PROXY": None,
            "no_proxy": None,
            **dict.fromkeys(_CA_VARIABLES + _PROXY_VARIABLES),
        }
        yield Project(sandbox, media, manifest, digest, env)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolving or reaching anything but 127.0.0.1/localhost fails the test."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1", b"localhost"):
            raise AssertionError(f"{host!r} would be resolved: the proxy was bypassed")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_certificate_that_does_not_verify_stops_the_run_with_exit_2(
    tmp_path: Path, pki: Pki
) -> None:
    """An HTTPS API whose certificate does not verify is not an outage: exit 2 at once,
    naming the host and the verification error, with how to trust a private CA; nothing
    reached the server and the entry is left to post later."""
    with https_project(tmp_path, pki, None) as project:
        result = project.run()
        assert project.sandbox.calls() == 0
        assert project.sandbox.publishes() == []
    assert result.exit_code == 2, result.output
    assert "127.0.0.1" in result.stderr
    assert "does not verify" in result.stderr
    assert "unable to get local issuer certificate" in result.stderr
    assert "REQUESTS_CA_BUNDLE" in result.stderr
    assert "SSLError" not in result.output
    assert all(row["state"] != "initialising" for row in journal_rows(project.sandbox_home()))


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_run_posts_through_a_proxy_with_the_private_ca_trusted(
    tmp_path: Path, pki: Pki, variable: str
) -> None:
    """HTTPS_PROXY carries every request (API and upload URL) through a CONNECT tunnel, and the
    private CA named by REQUESTS_CA_BUNDLE or SSL_CERT_FILE verifies the server."""
    with https_project(tmp_path, pki, PUBLIC_NAME) as project, forward_proxy() as (proxy, log):
        result = project.run(HTTPS_PROXY=proxy, **{variable: str(pki.ca_pem)})
        assert result.exit_code == 0, result.output
        assert "1 published" in result.stdout
        assert_published_once(project.sandbox, [project.digest])
    port = project.sandbox_port()
    assert log.targets
    assert set(log.targets) == {f"CONNECT {PUBLIC_NAME}:{port}"}


def test_through_a_proxy_without_the_ca_exit_2_names_the_host_after_one_attempt(
    tmp_path: Path, pki: Pki
) -> None:
    """Without the private CA the first TLS handshake fails: exit 2 naming tiktok.test, and
    no second connection is tried (a retry could not help)."""
    with https_project(tmp_path, pki, PUBLIC_NAME) as project, forward_proxy() as (proxy, log):
        result = project.run(HTTPS_PROXY=proxy)
        assert project.sandbox.calls() == 0
    assert result.exit_code == 2, result.output
    assert f"TLS certificate of {PUBLIC_NAME} does not verify" in result.stderr
    assert "REQUESTS_CA_BUNDLE" in result.stderr
    assert len(log.targets) == 1


def test_loopback_never_goes_through_the_proxy(tmp_path: Path, pki: Pki) -> None:
    """A sandbox on 127.0.0.1 is reached directly even with a proxy set (a dead one here)."""
    with https_project(tmp_path, pki, None) as project, forward_proxy() as (proxy, log):
        result = project.run(
            HTTPS_PROXY=proxy, HTTP_PROXY=proxy, REQUESTS_CA_BUNDLE=str(pki.ca_pem)
        )
        assert result.exit_code == 0, result.output
        assert_published_once(project.sandbox, [project.digest])
    assert log.targets == []
