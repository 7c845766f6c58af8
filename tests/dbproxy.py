"""A TCP proxy in front of PostgreSQL for fault tests: it can lose a commit's acknowledgement.

The server commits, the client never hears of it: the connection drops between the two. No
fault that a test can cause from outside (terminating a backend, restarting the server) lands
in that gap on purpose; a proxy that reads the client's messages can.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class DatabaseProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL. `lose_commit_ack(after=marker)`: the first
    connection that sends `marker` and then COMMIT is dropped once the server has answered the
    COMMIT, before the answer reaches the client."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self.acks_lost = 0
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]

    def __enter__(self) -> DatabaseProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def url(self, *, user: str, database: str) -> str:
        return f"postgres://{user}@127.0.0.1:{self.port}/{database}"

    def lose_commit_ack(self, *, after: bytes) -> None:
        with self._lock:
            self._marker = after

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            state = {"marked": False, "drop_reply": False}
            threading.Thread(
                target=self._to_server, args=(client, server, state), daemon=True
            ).start()
            threading.Thread(
                target=self._to_client, args=(server, client, state), daemon=True
            ).start()

    def _to_server(self, client: socket.socket, server: socket.socket, state: dict) -> None:
        while data := _recv(client):
            with self._lock:
                if self._marker is not None and self._marker in data:
                    state["marked"] = True
                if state["marked"] and b"COMMIT" in data and self._marker is not None:
                    state["drop_reply"] = True  # before the COMMIT leaves: its reply is next
                    self._marker = None
            if not _send(server, data):
                break
        _close(client, server)

    def _to_client(self, server: socket.socket, client: socket.socket, state: dict) -> None:
        while data := _recv(server):
            if state["drop_reply"]:
                with self._lock:
                    self.acks_lost += 1
                break
            if not _send(client, data):
                break
        _close(client, server)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
