"""GET /healthz: can this process reach its database and its broker? For load balancers and
orchestrators: no login, a few milliseconds when healthy, an answer within CHECK_SECONDS always."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

import kombu
import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

CHECK_SECONDS = 2.0
BROKER_TIMEOUT_SECONDS = 1.0


class _Check:
    """One check, run on a daemon thread of its own so that a server that never answers cannot
    hold the request past its deadline, nor the process when it exits. While a check hangs,
    later probes wait on the same run instead of piling up threads behind it."""

    def __init__(self, name: str, run: Callable[[], str]) -> None:
        self.name, self.run = name, run
        self._lock = threading.Lock()
        self._current: Future[str] | None = None

    def start(self) -> Future[str]:
        with self._lock:
            if self._current is None or self._current.done():
                self._current = Future()
                thread = threading.Thread(target=self._run, args=(self._current,), daemon=True)
                thread.name = f"healthz-{self.name}"
                thread.start()
            return self._current

    def _run(self, future: Future[str]) -> None:
        try:
            problem = self.run()
        except Exception as error:  # a surprise is a failed check, not a 500
            problem = _reason(error)
        future.set_result(problem)


def _check_database() -> str:
    """A trivial query on a fresh connection, closed at once (this thread keeps none open)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return _reason(error)
    finally:
        connection.close()
    return ""


def _check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        return _check_broker_folder(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
            socket_timeout=BROKER_TIMEOUT_SECONDS,
        )
        try:
            client.ping()
        except redis.RedisError as error:
            return _reason(error)
        finally:
            client.close()
        return ""
    try:  # another transport (e.g. RabbitMQ): open a connection the way Celery would
        with kombu.Connection(url, connect_timeout=BROKER_TIMEOUT_SECONDS) as broker:
            broker.ensure_connection(max_retries=1)
    except Exception as error:  # each transport raises its own errors
        return _reason(error)
    return ""


def _check_broker_folder(folder: str) -> str:
    """The embedded broker's messages are files: its folder must exist and take new ones."""
    if not os.path.isdir(folder):
        return "the embedded broker's folder does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "the embedded broker's folder is not writable"
    return ""


CHECKS = (_Check("database", _check_database), _Check("broker", _check_broker))


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 `{"status": "ok", "database": "ok", "broker": "ok"}`, or 503 with what failed and why."""
    deadline = time.monotonic() + CHECK_SECONDS
    running = [(check.name, check.start()) for check in CHECKS]
    report: dict[str, object] = {"status": "ok"}
    errors: dict[str, str] = {}
    for name, future in running:
        try:
            problem = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            problem = f"no answer within {CHECK_SECONDS:g} s"
        report[name] = "error" if problem else "ok"
        if problem:
            errors[name] = problem
    if errors:
        report.update(status="error", errors=errors)
        logger.warning("Health check failed: %s", errors)
    return JsonResponse(report, status=503 if errors else 200)


_USERINFO = re.compile(r"//[^/@\s]*@")


def _reason(error: BaseException) -> str:
    """The error's first line, without credentials: never a password, even one echoed back."""
    lines = str(error).strip().splitlines()
    text = _USERINFO.sub("//", lines[0] if lines else "")
    for secret in _secrets():
        text = text.replace(secret, "***")
    return f"{type(error).__name__}: {text}"[:300]


def _secrets() -> list[str]:
    passwords = [
        settings.DATABASES["default"].get("PASSWORD") or "",
        urlsplit(settings.CELERY_BROKER_URL).password or "",
    ]
    return [password for password in passwords if password]
