"""WEBHOOKS_EGRESS_PROXY: every delivery leaves through the operator's HTTP proxy, in a CONNECT
tunnel to the address Hookline checked.

The proxy here is real and resolves names itself, as Squid or Smokescreen would: handed a name,
it would connect wherever the name points at that moment. Names under `.proxy.test` answer as
scripted (DNS cannot be steered here); the sockets, the tunnel, TLS and the receivers are real.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import override_settings

from deliveries import transport


class EgressProxy:
    """An HTTP proxy on 127.0.0.1: tunnels CONNECTs and forwards absolute-form requests, and
    records both, with the Proxy-Authorization it was sent."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.forwarded: list[str] = []
        self.authorizations: list[str | None] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            rbufsize = 0  # nothing of the tunnel may stay behind in a read buffer

            def do_CONNECT(self) -> None:
                proxy.tunnels.append(self.path)
                proxy.authorizations.append(self.headers.get("proxy-authorization"))
                host, _, port = self.path.rpartition(":")
                self.close_connection = True
                try:  # the name, if it is one, resolved here and now
                    upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
                except OSError:
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                with upstream:
                    _pipe(self.connection, upstream)

            def do_POST(self) -> None:
                target = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                proxy.forwarded.append(self.path)
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                upstream.request("POST", target.path or "/", body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    while True:
        readable, _, _ = select.select([client, upstream], [], [], 10)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            (upstream if source is client else client).sendall(data)


@pytest.fixture
def proxy():
    server = EgressProxy()
    transport.forget_connections()
    yield server
    transport.forget_connections()
    server.close()


@pytest.fixture
def dns(monkeypatch):
    """Answers for `*.proxy.test`, in order, the last repeating; other names resolve as usual."""
    answers: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # noqa: ANN001, ANN202
        if isinstance(host, str) and host.endswith(".proxy.test"):
            address = answers.pop(0) if len(answers) > 1 else answers[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def _port(url: str) -> int:
    return urlsplit(url).port


def test_deliveries_tunnel_through_the_proxy_to_the_checked_address(proxy, dns, receiver):
    port = _port(receiver.url())
    dns.append("127.0.0.1")
    url = f"http://app.proxy.test:{port}/via-proxy"

    with override_settings(WEBHOOKS_EGRESS_PROXY=proxy.url):
        first = transport.post(url, b"{}", {"webhook-id": "msg_proxy_1"})
        second = transport.post(url, b"{}", {"webhook-id": "msg_proxy_2"})

    assert first.status == second.status == 200
    assert proxy.tunnels == [f"127.0.0.1:{port}"]  # the address, never the name; kept alive
    assert proxy.forwarded == []
    received = receiver.requests("/via-proxy")
    assert [r.headers["webhook-id"] for r in received] == ["msg_proxy_1", "msg_proxy_2"]
    assert {r.headers["host"] for r in received} == {f"app.proxy.test:{port}"}


@override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=(ipaddress.ip_network("127.0.0.2/32"),))
def test_a_name_rebound_after_the_check_cannot_reach_a_blocked_address(proxy, dns, receiver):
    """Checked, the name is 127.0.0.2 (allowed, nothing listens); asked again, it is the
    receiver's 127.0.0.1, which is not allowed. A proxy handed the name would reach it."""
    port = _port(receiver.url())
    dns.extend(["127.0.0.2", "127.0.0.1"])

    with override_settings(WEBHOOKS_EGRESS_PROXY=proxy.url):
        result = transport.post(f"http://app.proxy.test:{port}/hook", b"{}", {})

    assert result.error_kind == "connection"
    assert "502" in result.error_message
    assert proxy.tunnels == [f"127.0.0.2:{port}"]
    assert receiver.requests() == []


def test_the_network_policy_still_applies_behind_the_proxy(proxy, receiver):
    with override_settings(WEBHOOKS_EGRESS_PROXY=proxy.url, WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=()):
        result = transport.post(receiver.url("/private"), b"{}", {})

    assert result.error_kind == "blocked"
    assert proxy.tunnels == proxy.forwarded == []
    assert receiver.requests() == []


def test_proxy_credentials_in_its_url_go_with_the_connect(proxy, receiver):
    credentialed = proxy.url.replace("http://", "http://hook%40line:s3cret@")

    with override_settings(WEBHOOKS_EGRESS_PROXY=credentialed):
        result = transport.post(receiver.url("/hook"), b"{}", {})

    assert result.status == 200
    assert proxy.authorizations == ["Basic aG9va0BsaW5lOnMzY3JldA=="]  # hook@line:s3cret


# --- TLS through the tunnel -----------------------------------------------------------------------


class Certificates:
    """A test CA, and certificates it signs for the names and addresses asked for."""

    def __init__(self, directory) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hookline test CA")])
        self.cert = self._build(self.name, self.key.public_key(), ca=True, names=[])
        self.ca_path = directory / "ca.pem"
        self.ca_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, names: list[x509.GeneralName]) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver")])
        cert = self._build(subject, key.public_key(), ca=False, names=names)
        cert_path, key_path = self.directory / "leaf.pem", self.directory / "leaf-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(cert_path), str(key_path)

    def _build(self, subject, public_key, *, ca: bool, names) -> x509.Certificate:  # noqa: ANN001
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )  # fmt: skip
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
            )
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256())


class TLSReceiver:
    """An HTTPS receiver on 127.0.0.1 that records the SNI it was asked for and each request."""

    def __init__(self, cert_path: str, key_path: str) -> None:
        self.server_names: list[str | None] = []
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append((self.path, self.headers["host"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def certificates(tmp_path, monkeypatch):
    """A test CA that Hookline trusts instead of the public ones (a public certificate cannot be
    had here)."""
    issued = Certificates(tmp_path)
    monkeypatch.setattr(transport.certifi, "where", lambda: str(issued.ca_path))
    transport.forget_connections()
    yield issued
    transport.forget_connections()


@pytest.fixture
def tls_receiver(certificates):
    started: list[TLSReceiver] = []

    def start(names: list[x509.GeneralName]) -> TLSReceiver:
        started.append(TLSReceiver(*certificates.issue(names)))
        return started[-1]

    yield start
    for server in started:
        server.close()


@override_settings(WEBHOOKS_REQUIRE_HTTPS=True)
def test_tls_through_the_tunnel_is_verified_on_the_name(proxy, dns, tls_receiver):
    receiver = tls_receiver([x509.DNSName("hooks.proxy.test")])
    dns.append("127.0.0.1")

    with override_settings(WEBHOOKS_EGRESS_PROXY=proxy.url):
        result = transport.post(f"https://hooks.proxy.test:{receiver.port}/hook", b"{}", {})

    assert result.status == 200, result.error_message
    assert proxy.tunnels == [f"127.0.0.1:{receiver.port}"]
    assert receiver.server_names == ["hooks.proxy.test"]
    assert receiver.requests == [("/hook", f"hooks.proxy.test:{receiver.port}")]


@pytest.mark.parametrize(
    "names",
    [
        [x509.DNSName("other.proxy.test")],
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],  # the address the tunnel goes to
    ],
    ids=["another-name", "the-address"],
)
@override_settings(WEBHOOKS_REQUIRE_HTTPS=True)
def test_a_certificate_not_for_the_name_is_refused_through_the_tunnel(
    proxy, dns, tls_receiver, names
):
    receiver = tls_receiver(names)
    dns.append("127.0.0.1")

    with override_settings(WEBHOOKS_EGRESS_PROXY=proxy.url):
        result = transport.post(f"https://hooks.proxy.test:{receiver.port}/hook", b"{}", {})

    assert result.error_kind == "tls"
    assert proxy.tunnels == [f"127.0.0.1:{receiver.port}"]
    assert receiver.requests == []
