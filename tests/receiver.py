"""A real HTTP receiver on 127.0.0.1 for tests: records every request, answers as scripted."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


HANG = "hang"  # answer only after `hang_seconds`, past any test timeout
RESET = "reset"  # drop the connection with a TCP reset instead of answering


class Receiver:
    """`script(path, [500, HANG, RESET, 200])` sets the answers for a path; otherwise 200.

    `delay` (seconds) slows every answer, to keep work in flight while a test breaks something.
    `reply_with(path, build)` makes each 2xx answer to a path carry the body `build` returns for
    its request (by default `{"ok": true}`). `answer_with(path, handle)` lets `handle` choose both
    the status and the body of each answer, as a receiver that checks what it gets would.
    """

    def __init__(self, port: int = 0) -> None:
        self._requests: list[Received] = []
        self._scripts: dict[str, deque[int | str]] = defaultdict(deque)
        self._replies: dict[str, Callable[[Received], bytes]] = {}
        self._handlers: dict[str, Callable[[Received], tuple[int, bytes]]] = {}
        self._lock = threading.Lock()
        self.delay = 0.0
        self.hang_seconds = 4.0
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/hook") -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def script(self, path: str, statuses: list[int | str]) -> None:
        with self._lock:
            self._scripts[path].extend(statuses)

    def reply_with(self, path: str, build: Callable[[Received], bytes]) -> None:
        with self._lock:
            self._replies[path] = build

    def answer_with(self, path: str, handle: Callable[[Received], tuple[int, bytes]]) -> None:
        with self._lock:
            self._handlers[path] = handle

    def requests(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.requests(path)
            if len(received) >= count:
                return received
            time.sleep(0.05)
        raise AssertionError(
            f"expected {count} requests to {path or 'any path'} within {timeout} s, "
            f"got {len(self.requests(path))}"
        )

    def webhook_ids(self, path: str | None = None) -> list[str]:
        return [r.headers.get("webhook-id", "") for r in self.requests(path)]

    def _answer(self, received: Received) -> int | str:
        with self._lock:
            self._requests.append(received)
            script = self._scripts[received.path]
            return script.popleft() if script else 200

    def _reply(self, received: Received) -> bytes:
        with self._lock:
            build = self._replies.get(received.path)
        return build(received) if build else b'{"ok": true}'

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Buffered, so headers and body leave in one packet: no Nagle/delayed-ACK stalls.
            wbufsize = 64 * 1024

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                received = Received(self.path, headers, body, time.time())
                with receiver._lock:
                    handle = receiver._handlers.get(received.path)
                if handle is not None:
                    receiver._answer(received)
                    self._send(*handle(received))
                    return
                action = receiver._answer(received)
                if receiver.delay:
                    time.sleep(receiver.delay)
                if action == RESET:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    return
                if action == HANG:
                    time.sleep(receiver.hang_seconds)
                    action = 200
                status = int(action)
                reply = (
                    receiver._reply(received) if status < 300 else b'{"error": "scripted failure"}'
                )
                self._send(status, reply)

            def _send(self, status: int, reply: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
