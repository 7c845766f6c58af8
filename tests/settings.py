"""Settings for the test suite: real PostgreSQL and Redis when reachable, SQLite and the embedded
broker otherwise (tests marked `services` are then skipped), or a hard failure when
REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

_BASE_DIR = Path(__file__).resolve().parent.parent
_REQUIRE = os.environ.get("REQUIRE_SERVICES", "") == "1"

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hookline")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
# Absolute, so that the workers and servers tests start find the same folder from anywhere.
os.environ["HOOKLINE_VAR_DIR"] = str(
    Path(os.environ.get("HOOKLINE_VAR_DIR", _BASE_DIR / "var" / "test")).resolve()
)
# Test receivers are plain HTTP on 127.0.0.1; tests about these rules switch them back on.
os.environ.setdefault("WEBHOOKS_REQUIRE_HTTPS", "false")
# Test receivers listen on 127.0.0.1 and localhost, which must not count as Hookline's own hosts
# (endpoints there would be refused). The test client's host, and the live server's, are added by
# Django and pytest-django.
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST", "127.0.0.0/8")
os.environ.setdefault("WEBHOOKS_RETRY_SCHEDULE", "0.2,0.4,0.6")
os.environ.setdefault("WEBHOOKS_TIMEOUT", "2")
os.environ.setdefault("WEBHOOKS_SWEEP_INTERVAL", "0.5")
# The circuit breaker would change the retry spacing that fault tests measure; its own tests
# lower this again.
os.environ.setdefault("WEBHOOKS_CIRCUIT_FAILURES", "1000")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


SERVICES_MISSING: list[str] = []
if os.environ["DATABASE_URL"].startswith("postgres") and not _reachable(
    os.environ["DATABASE_URL"], 5432
):
    SERVICES_MISSING.append(f"PostgreSQL at {os.environ['DATABASE_URL']}")
if os.environ["CELERY_BROKER_URL"].startswith("redis") and not _reachable(
    os.environ["CELERY_BROKER_URL"], 6379
):
    SERVICES_MISSING.append(f"Redis at {os.environ['CELERY_BROKER_URL']}")
if SERVICES_MISSING:
    if _REQUIRE:
        raise RuntimeError(
            "REQUIRE_SERVICES=1 but these are unreachable: " + ", ".join(SERVICES_MISSING)
        )
    _fallback = Path(os.environ["HOOKLINE_VAR_DIR"]) / "fallback.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{_fallback}"
    os.environ["CELERY_BROKER_URL"] = "filesystem://"

from config.settings import *  # noqa: E402, F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, as `make run` uses, not Django's default in-memory test database: its shared cache
    # fails a second connection at once ("database table is locked") where the file's WAL and
    # busy timeout (config.settings) let it wait, and worker or beat processes cannot open it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
