"""RabbitMQ for tests: a virtual host of the test session's own on the machine's server, and a
private server on ports of its own that a test may kill and start again while the machine's
server goes on serving everyone else."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import kombu

# Debian's launcher itself: the `rabbitmq-server` on the PATH is a wrapper that, run by root,
# switches to the `rabbitmq` user, who could not write to the private server's folder.
DEBIAN_LAUNCHER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class Unavailable(Exception):
    """RabbitMQ cannot serve the tests; the message says why."""


def accepts_connections(url: str) -> bool:
    try:
        with kombu.Connection(url, connect_timeout=1) as connection:
            connection.ensure_connection(max_retries=0)
    except Exception:  # refused, reset, or the broker still starting: each raises its own
        return False
    return True


def session_vhost_name() -> str:
    return f"hookline_test_{os.getpid()}"


def session_vhost_add(server_url: str) -> str:
    """Make a virtual host of this test session's own on the server; returns its URL.

    Raises Unavailable when rabbitmqctl is missing or refused, or the server is unreachable.
    """
    if not shutil.which("rabbitmqctl"):
        raise Unavailable("rabbitmqctl is missing (Debian's rabbitmq-server package)")
    if not accepts_connections(server_url):
        raise Unavailable(f"RabbitMQ at {_without_password(server_url)} is unreachable")
    name = session_vhost_name()
    user = urlsplit(server_url).username or "guest"
    _rabbitmqctl("delete_vhost", name, check=False)  # left behind by a session killed earlier
    try:
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    except subprocess.CalledProcessError as error:
        raise Unavailable(f"rabbitmqctl failed: {error.stderr.decode(errors='replace')}") from None
    return urlunsplit(urlsplit(server_url)._replace(path="/" + quote(name, safe="")))


def session_vhost_delete() -> None:
    _rabbitmqctl("delete_vhost", session_vhost_name(), check=False)


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, timeout=60, check=check
    )  # fmt: skip


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname or "")) if parts.password else url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRabbitMQ:
    """A RabbitMQ node of a test's own: its own name, ports and files, no plugins.

    Its queues and persistent messages survive `restart()`, as a real server's do on disk.
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self._dir = tempfile.TemporaryDirectory(prefix="hookline-rabbitmq-")
        self._process: subprocess.Popen | None = None
        self._log = Path(self._dir.name) / "server.log"

    @staticmethod
    def launcher() -> str | None:
        if DEBIAN_LAUNCHER.exists():
            return str(DEBIAN_LAUNCHER)
        return shutil.which("rabbitmq-server")

    def __enter__(self) -> PrivateRabbitMQ:
        try:
            self.start()
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self._dir.cleanup()

    def start(self, timeout: float = 60) -> None:
        launcher = self.launcher()
        assert launcher, "rabbitmq-server is needed for a private RabbitMQ"
        folder = Path(self._dir.name)
        # Its own configuration and environment files, so the machine's (which name the shared
        # node and its port) are not read.
        (folder / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        (folder / "rabbitmq-env.conf").write_text("")
        (folder / "enabled_plugins").write_text("[].\n")
        env = {
            **os.environ,
            "HOME": str(folder),  # where Erlang keeps the node's cookie
            "RABBITMQ_NODENAME": f"hookline-test-{self.port}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(_free_port()),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "pid"),
        }
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [launcher], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not accepts_connections(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("The private RabbitMQ did not start:\n" + self.log())
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the node, as a crash would: nothing is flushed or closed cleanly."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def restart(self) -> None:
        self.kill()
        self.start()

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""
