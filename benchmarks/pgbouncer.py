"""A PgBouncer in transaction mode, started for one run in front of a PostgreSQL server.

The benchmark's `--pgbouncer` variant measures through one, and the test suite runs its
`pgbouncer` tests through one. The binary is Debian's `pgbouncer` package; everything else (the
configuration, the user list, the log) lives in a temporary directory, and it listens on a free
port of 127.0.0.1 only. Transaction mode hands each transaction whichever server connection is
free, so nothing a client leaves on a session (a SET, an advisory lock, a WITH HOLD cursor, a
prepared statement) can be counted on in the next transaction. With `round_robin` (the tests'
choice) that happens on every transaction rather than only under load, so that a test meets it
at once; without it, PgBouncer reuses the last server connection freed first, as in production.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.rows import dict_row

SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
# PgBouncer refuses to run as root; as root it is started as this user (Debian's PostgreSQL
# package creates it), or as nobody.
UNPRIVILEGED_USERS = ("postgres", "nobody")


def pgbouncer_binary() -> str | None:
    """The path of the `pgbouncer` program, or None when it is not installed."""
    return shutil.which("pgbouncer", path=SEARCH_PATH)


class PgBouncerError(RuntimeError):
    """PgBouncer is not installed, or did not start; the message holds its log."""


class PgBouncer:
    """`with PgBouncer(host=…, port=…, user=…) as bouncer:` forwards 127.0.0.1:`bouncer.port`
    to that server, any database, in transaction mode, and stops when the block ends.

    It listens on 127.0.0.1 only. Given a `password`, clients must give it too (SCRAM), and it
    logs in to the server with it; without, neither side is asked for one. `pool_size` server
    connections per database and user at most; `round_robin` hands them out in turn.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str = "",
        pool_size: int = 20,
        round_robin: bool = False,
    ) -> None:
        self.upstream = (host, port)
        self.user = user
        self.password = password
        self.pool_size = pool_size
        self.round_robin = round_robin
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> PgBouncer:
        binary = pgbouncer_binary()
        if binary is None:
            raise PgBouncerError("PgBouncer is not installed (Debian: apt-get install pgbouncer).")
        self._dir = tempfile.TemporaryDirectory(prefix="hookline-pgbouncer-")
        try:
            self._start(binary, Path(self._dir.name))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # immediate shutdown: clients are cut off
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def url(self, database: str) -> str:
        """A DATABASE_URL for `database` through this PgBouncer."""
        password = f":{quote(self.password, safe='')}" if self.password else ""
        return f"postgres://{quote(self.user, safe='')}{password}@127.0.0.1:{self.port}/{database}"

    def warm(self, database: str, connections: int = 3) -> None:
        """Open `connections` server connections to `database` at once, then leave them idle:
        with round robin, each transaction after this gets another one than the last did."""
        clients = [psycopg.connect(self.url(database)) for _ in range(connections)]
        try:
            for client in clients:
                client.execute("SELECT 1")  # its transaction, still open, holds a server connection
            for client in clients:
                client.commit()
        finally:
            for client in clients:
                client.close()

    def show(self, what: str) -> list[dict[str, Any]]:
        """The rows of `SHOW <what>` on the admin console (CLIENTS, SERVERS, POOLS, STATS…)."""
        if not what.replace("_", "").isalpha():
            raise ValueError(f"Not a SHOW command: {what!r}")
        # The console speaks the simple query protocol only: a client-side binding cursor.
        console = psycopg.connect(
            host="127.0.0.1", port=self.port, dbname="pgbouncer", user=self.user,
            password=self.password or None, autocommit=True, cursor_factory=psycopg.ClientCursor,
        )  # fmt: skip
        with console, console.cursor(row_factory=dict_row) as cursor:
            cursor.execute(f"SHOW {what}")
            return cursor.fetchall()

    def log(self) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _start(self, binary: str, folder: Path) -> None:
        self.port = _free_port()
        config = folder / "pgbouncer.ini"
        config.write_text(self._config(folder))
        (folder / "userlist.txt").write_text(f"{_quoted(self.user)} {_quoted(self.password)}\n")
        if os.geteuid() == 0:
            _hand_over(folder, _unprivileged_user())
        self.process = subprocess.Popen(
            [binary, "--quiet", str(config)],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_listening()

    def _config(self, folder: Path) -> str:
        host, port = self.upstream
        lines = [
            "[databases]",
            f"* = host={host} port={port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            f"auth_type = {'scram-sha-256' if self.password else 'trust'}",
            f"auth_file = {folder / 'userlist.txt'}",
            f"admin_users = {self.user}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            "max_client_conn = 500",
            f"server_round_robin = {int(self.round_robin)}",
            "ignore_startup_parameters = extra_float_digits",
            f"logfile = {folder / 'pgbouncer.log'}",
            f"pidfile = {folder / 'pgbouncer.pid'}",
        ]
        if os.geteuid() == 0:
            lines.append(f"user = {_unprivileged_user()}")
        return "\n".join(lines) + "\n"

    def _wait_listening(self, timeout: float = 10) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PgBouncerError(f"PgBouncer exited at start:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise PgBouncerError(f"PgBouncer was not listening within {timeout} s:\n{self.log()}")


def _unprivileged_user() -> str:
    for name in UNPRIVILEGED_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PgBouncerError("PgBouncer cannot run as root, and there is no user to run it as.")


def _hand_over(folder: Path, user: str) -> None:
    """Let `user` write the log and pid file in `folder` (it reads the rest as root)."""
    entry = pwd.getpwnam(user)
    for path in (folder, *folder.iterdir()):
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _quoted(text: str) -> str:
    """A user list entry: in double quotes, with each one inside doubled."""
    return '"' + text.replace('"', '""') + '"'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
