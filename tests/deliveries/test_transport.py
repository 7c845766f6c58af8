"""`deliveries.transport.post` against real servers on 127.0.0.1: no mocks anywhere."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.test import override_settings

from deliveries import transport

Handler = Callable[[socket.socket, threading.Event], None]


@dataclass
class RawServer:
    """A bare TCP server on 127.0.0.1; each connection is handed to `handler` in a thread."""

    port: int
    stop: threading.Event
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def raw_server(handler: Handler) -> Iterator[RawServer]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    server = RawServer(port=listener.getsockname()[1], stop=threading.Event())

    def serve_one(conn: socket.socket) -> None:
        with conn, suppress(OSError):  # the client hanging up is not the test's concern
            handler(conn, server.stop)

    def accept_loop() -> None:
        while not server.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server.connections += 1
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        thread.join(2)
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    """Read one whole HTTP request (headers and Content-Length body) so closing sends no RST."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def recording(server_box: list[RawServer], reply: Handler) -> Handler:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        server_box[0].requests.append(read_request(conn))
        reply(conn, stop)

    return handler


@contextmanager
def replying_server(reply: Handler) -> Iterator[RawServer]:
    """A server that records each request, then lets `reply` answer it."""
    box: list[RawServer] = []
    with raw_server(recording(box, reply)) as server:
        box.append(server)
        yield server


def post(url: str, headers: dict[str, str] | None = None) -> transport.TransportResult:
    return transport.post(url, b'{"type":"order.paid"}', headers or {})


def test_headers_and_body_are_sent_and_2xx_is_a_success(receiver):
    result = post(
        receiver.url("/hook"),
        {"webhook-id": "msg_transport_1", "content-type": "application/json"},
    )

    assert result.status == 200
    assert result.error_kind == ""
    assert result.error_message == ""
    assert result.body == '{"ok": true}'
    assert result.duration_ms > 0
    [received] = receiver.requests("/hook")
    assert received.headers["webhook-id"] == "msg_transport_1"
    assert received.headers["content-type"] == "application/json"
    assert received.body == b'{"type":"order.paid"}'


def test_response_headers_are_returned_lowercased(receiver):
    result = post(receiver.url())

    assert result.headers["content-type"] == "application/json"
    assert result.headers["content-length"] == str(len(result.body))
    assert all(name == name.lower() for name in result.headers)


def test_5xx_is_a_failed_attempt_with_status_and_body(receiver):
    receiver.script("/hook", [503])

    result = post(receiver.url("/hook"))

    assert result.status == 503
    assert result.error_kind == "http_status"
    assert result.error_message == "HTTP 503"
    assert "scripted failure" in result.body
    assert len(receiver.requests("/hook")) == 1


def test_retry_after_header_in_seconds_is_exposed():
    def reply(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )

    with replying_server(reply) as server:
        result = post(server.url())

    assert result.status == 429
    assert result.error_kind == "http_status"
    assert result.retry_after == 7.0


def test_receiver_that_never_answers_times_out_within_the_deadline():
    def hang(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(15)

    timeout = settings.WEBHOOKS_TIMEOUT
    with replying_server(hang) as server:
        started = time.monotonic()
        result = post(server.url())
        elapsed = time.monotonic() - started

    assert len(server.requests) == 1  # the request did arrive; only the answer is missing
    assert result.error_kind == "timeout"
    assert result.status is None
    assert f"{timeout:g} s" in result.error_message
    assert timeout * 0.9 <= elapsed < timeout + 1.5
    assert result.duration_ms < (timeout + 1.5) * 1000


def test_body_trickled_slower_than_the_deadline_times_out_within_the_deadline():
    def trickle(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        give_up = time.monotonic() + 2.5
        while time.monotonic() < give_up and not stop.is_set():
            conn.sendall(b"x")
            time.sleep(0.1)

    with override_settings(WEBHOOKS_TIMEOUT=0.5), replying_server(trickle) as server:
        started = time.monotonic()
        result = post(server.url())
        elapsed = time.monotonic() - started

    assert result.error_kind == "timeout"
    assert elapsed < 0.5 + 1.0


def test_closed_port_is_a_connection_error():
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    result = post(f"http://127.0.0.1:{port}/hook")

    assert result.error_kind == "connection"
    assert result.status is None
    assert result.error_message.startswith("connection failed: ")
    assert "refused" in result.error_message.lower()
    assert result.duration_ms < 1500


def test_connection_reset_on_accept_is_a_connection_error():
    def reset(conn: socket.socket, stop: threading.Event) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    with raw_server(reset) as server:
        result = post(server.url())

    assert server.connections == 1
    assert result.error_kind == "connection"
    assert result.status is None
    assert result.error_message.startswith("connection failed: ")
    message = result.error_message.lower()
    # Which the client sees first depends on timing: the reset, or the closed connection.
    assert any(word in message for word in ("reset", "broken pipe", "aborted", "closed"))


def answer_204(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")


def redirect_to(target: str) -> Handler:
    def reply(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: " + target.encode() + b"\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )

    return reply


def test_redirect_is_not_followed_and_counts_as_failed_attempt():
    with replying_server(answer_204) as redirect_target:
        target = redirect_target.url("/redirected")
        with replying_server(redirect_to(target)) as server:
            result = post(server.url())

    assert len(server.requests) == 1
    assert result.status == 302
    assert result.error_kind == "http_status"
    assert f"redirect to {target} not followed" in result.error_message
    assert result.headers["location"] == target
    assert redirect_target.connections == 0
    assert redirect_target.requests == []


def endless_body(first: bytes) -> Handler:
    """A 200 that announces 1 GiB and streams `first` then b"z" until the client goes away."""

    def reply(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n" + first)
        filler = b"z" * 65536
        give_up = time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < give_up:
            conn.sendall(filler)

    return reply


def test_response_body_is_read_only_up_to_the_limit():
    with (
        override_settings(WEBHOOKS_RESPONSE_BODY_LIMIT=100),
        replying_server(endless_body(b"a" * 150)) as server,
    ):
        started = time.monotonic()
        result = post(server.url())
        elapsed = time.monotonic() - started

    # Reading the whole body would hit the deadline and end as a timeout instead.
    assert result.error_kind == ""
    assert result.status == 200
    assert result.body == "a" * 100
    assert elapsed < settings.WEBHOOKS_TIMEOUT


def test_stored_body_is_truncated_to_stored_body_chars():
    limit = transport.STORED_BODY_CHARS * 3
    with (
        override_settings(WEBHOOKS_RESPONSE_BODY_LIMIT=limit),
        replying_server(endless_body(b"a" * limit)) as server,
    ):
        result = post(server.url())

    assert result.error_kind == ""
    assert result.status == 200
    assert result.body == "a" * transport.STORED_BODY_CHARS


def test_zero_body_limit_stores_no_body():
    with (
        override_settings(WEBHOOKS_RESPONSE_BODY_LIMIT=0),
        replying_server(endless_body(b"a" * 10)) as server,
    ):
        result = post(server.url())

    assert result.status == 200
    assert result.body == ""


def test_loopback_target_is_blocked_without_allowlist_and_nothing_is_sent():
    with (
        override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=()),
        replying_server(answer_204) as server,
    ):
        result = post(server.url())

    assert result.error_kind == "blocked"
    assert result.status is None
    assert "127.0.0.1" in result.error_message
    assert "private or reserved" in result.error_message
    assert server.connections == 0


def test_plain_http_is_blocked_when_https_is_required_and_nothing_is_sent():
    with override_settings(WEBHOOKS_REQUIRE_HTTPS=True), replying_server(answer_204) as server:
        result = post(server.url())

    assert result.error_kind == "blocked"
    assert result.status is None
    assert "WEBHOOKS_REQUIRE_HTTPS" in result.error_message
    assert server.connections == 0


def test_same_server_is_reachable_when_the_rules_allow_it():
    # Guards the two tests above: their server refuses nothing, so only the policy blocked them.
    with replying_server(answer_204) as server:
        result = post(server.url())

    assert result.status == 204
    assert result.error_kind == ""
    assert server.connections == 1


def test_backslash_in_authority_cannot_smuggle_a_blocked_host_past_the_policy():
    with (
        override_settings(WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST=()),
        replying_server(answer_204) as server,
    ):
        result = post(f"http://127.0.0.1:{server.port}\\@8.8.8.8/hook")

    assert server.connections == 0
    assert result.status is None
    assert result.error_kind == "blocked"


def test_status_line_and_headers_dripped_past_the_deadline_time_out_at_the_deadline():
    def drip_headers(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        give_up = time.monotonic() + 4
        while time.monotonic() < give_up and not stop.is_set():
            conn.sendall(b"X-Slow: x\r\n")
            time.sleep(0.2)

    with override_settings(WEBHOOKS_TIMEOUT=1), replying_server(drip_headers) as server:
        started = time.monotonic()
        result = post(server.url())
        elapsed = time.monotonic() - started

    assert result.error_kind == "timeout"
    assert elapsed < 1 + 0.8


def test_a_worker_is_free_again_at_once_after_a_cut_off_receiver(receiver):
    def drip_headers(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.is_set():
            conn.sendall(b"X-Slow: x\r\n")
            time.sleep(0.2)

    with override_settings(WEBHOOKS_TIMEOUT=1), replying_server(drip_headers) as server:
        assert post(server.url()).error_kind == "timeout"
        started = time.monotonic()
        healthy = post(receiver.url("/after"))

    assert healthy.status == 200
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    "headers",
    [
        b"".join(b"X-Many-%d: x\r\n" % n for n in range(150)),
        b"X-Huge: " + b"x" * 70_000 + b"\r\n",
    ],
    ids=["too-many-headers", "huge-header"],
)
def test_oversized_response_headers_are_refused_quickly(headers):
    def reply(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 0\r\n\r\n")

    with replying_server(reply) as server:
        started = time.monotonic()
        result = post(server.url())

    assert result.status is None
    assert result.error_kind == "invalid_response"
    assert "header" in result.error_message.lower()
    assert time.monotonic() - started < 1.5
