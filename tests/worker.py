"""A real Celery worker process (with embedded beat) for tests, against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.brokers import lose_messages
from tests.pooling import direct_settings

BASE_DIR = Path(__file__).resolve().parent.parent


def wait_until(condition, timeout: float, message: str) -> None:
    """Wait for `condition()` to hold, looking every 50 ms; fail with `message` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(message)


def worker_database_url() -> str:
    """The test database's URL, for a process started by a test: the server itself. In the
    PgBouncer pass, such a process also inherits DATABASE_POOL_URL (tests.pooling)."""
    db = direct_settings()
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def flush_broker(url: str) -> None:
    """Drop what earlier tests left on the broker: messages, and on Redis the wake-up flags (in
    the database, they go with the tables' flush between tests)."""
    if url.startswith("redis"):
        import redis

        redis.Redis.from_url(url).flushdb()
    else:
        lose_messages(url)


class CeleryWorker:
    def __init__(
        self,
        concurrency: int = 2,
        env: dict[str, str] | None = None,
        flush: bool = True,
        beat: bool = True,
    ) -> None:
        self.concurrency = concurrency
        self.flush = flush
        self.beat = beat
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="hookline-worker-")
        self.log_path = Path(self._dir.name) / "worker.log"
        self.last_log = ""

    def __enter__(self) -> CeleryWorker:
        if self.flush:
            flush_broker(self.extra_env.get("CELERY_BROKER_URL", settings.CELERY_BROKER_URL))
        try:
            self.start()
        except BaseException:
            self.stop(signal.SIGKILL)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.last_log = self.log()
        self._dir.cleanup()

    def start(self) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": worker_database_url(),
            # The test's broker and flags, also when it moved them (tests.brokers.using_broker).
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--concurrency", str(self.concurrency), "--loglevel", "INFO",
            "--hostname", f"test-{os.getpid()}-{id(self)}@%h",
        ]  # fmt: skip
        if self.beat:
            command += ["--beat", "--schedule", str(Path(self._dir.name) / "beat-schedule")]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash or an OOM kill would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("The Celery worker is not running:\n" + self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if " ready." in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError(f"The Celery worker was not ready within {timeout} s:\n{self.log()}")
