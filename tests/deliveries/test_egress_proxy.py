"""WEBHOOKS_EGRESS_PROXY: every delivery leaves through the operator's HTTP proxy."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from django.test import override_settings

from deliveries import transport


class ForwardProxy:
    """A minimal HTTP forward proxy on 127.0.0.1 that records what it forwards."""

    def __init__(self) -> None:
        self.forwarded: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

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
                self.send_header("Via", "1.1 test-proxy")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy():
    server = ForwardProxy()
    transport.forget_connections()
    yield server
    transport.forget_connections()
    server.close()


def test_deliveries_go_through_the_egress_proxy(proxy, receiver):
    with override_settings(WEBHOOKS_EGRESS_PROXY=proxy.url):
        result = transport.post(receiver.url("/via-proxy"), b"{}", {"webhook-id": "msg_proxy"})

    assert result.status == 200
    assert result.headers["via"] == "1.1 test-proxy"
    assert proxy.forwarded == [receiver.url("/via-proxy")]
    assert receiver.requests("/via-proxy")[0].headers["webhook-id"] == "msg_proxy"


def test_the_network_policy_still_applies_behind_the_proxy(proxy, receiver):
    with override_settings(WEBHOOKS_EGRESS_PROXY=proxy.url, WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=()):
        result = transport.post(receiver.url("/private"), b"{}", {})

    assert result.error_kind == "blocked"
    assert proxy.forwarded == []
    assert receiver.requests() == []
