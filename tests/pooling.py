"""The PgBouncer pass: `HOOKLINE_TEST_PGBOUNCER=1 pytest -m pgbouncer` (part of `make test`).

Once Django has created the test database (directly: PgBouncer would hold connections to it
that keep it from being dropped), the session starts a PgBouncer in transaction mode in front of
it, with round robin, so that each transaction gets another server connection than the last.
From then on the test process connects through it, with the settings DATABASE_POOL_URL gives
(config.database), and the workers it starts get DATABASE_POOL_URL itself. Before the test
database is dropped, the PgBouncer is stopped.

Tests marked `pgbouncer` are the part of the suite that the pass runs: emit, claim, deliver,
retry, replay, purge and the lists. Tests that take the `pgbouncer` fixture run only in this pass.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection, connections

from benchmarks.pgbouncer import PgBouncer, pgbouncer_binary
from config.database import database_settings

ENABLED = os.environ.get("HOOKLINE_TEST_PGBOUNCER", "") == "1"
# How the test process and its workers name themselves to PgBouncer (SHOW CLIENTS).
TEST_PROCESS_NAME = "hookline-tests"
WORKER_NAME = "hookline-test-worker"
# The settings that say where and how to connect; the rest (the test database's name) stay.
CONNECTION_KEYS = ("HOST", "PORT", "USER", "PASSWORD", "OPTIONS", "DISABLE_SERVER_SIDE_CURSORS")

_state: dict[str, Any] = {}


def running() -> PgBouncer | None:
    """The pass's PgBouncer, while the test process connects through it."""
    return _state.get("bouncer")


def direct_settings() -> dict[str, Any]:
    """The test database's settings for a direct connection, whatever the test process uses."""
    return _state.get("direct") or connection.settings_dict


def require_pgbouncer() -> None:
    """Skip the calling test where PgBouncer is not installed; fail it under REQUIRE_SERVICES=1."""
    if pgbouncer_binary() is not None:
        return
    if os.environ.get("REQUIRE_SERVICES", "") == "1":
        pytest.fail("REQUIRE_SERVICES=1, but PgBouncer is not installed")
    pytest.skip("PgBouncer is not installed (apt-get install pgbouncer)")


def unavailable() -> str:
    """Why the pass cannot run here, or "" when it can."""
    if connection.vendor != "postgresql":
        return "the PgBouncer pass needs PostgreSQL, which is unreachable"
    if pgbouncer_binary() is None:
        return "PgBouncer is not installed (apt-get install pgbouncer)"
    return ""


@contextlib.contextmanager
def through_pgbouncer() -> Iterator[PgBouncer]:
    """Connect the test process through a new PgBouncer, and give its URL to started workers."""
    direct = connection.settings_dict
    with PgBouncer(
        host=direct["HOST"] or "127.0.0.1", port=int(direct["PORT"] or 5432),
        user=direct["USER"] or "postgres", password=direct["PASSWORD"] or "", round_robin=True,
    ) as bouncer:  # fmt: skip
        name = direct["NAME"]
        pooled = database_settings(
            url=_url(direct, name),
            pool_url=f"{bouncer.url(name)}?application_name={TEST_PROCESS_NAME}",
            conn_max_age=direct["CONN_MAX_AGE"],
        )
        _state["direct"] = {**direct}
        _switch({key: pooled[key] for key in CONNECTION_KEYS})
        os.environ["DATABASE_POOL_URL"] = f"{bouncer.url(name)}?application_name={WORKER_NAME}"
        bouncer.warm(name)
        _state["bouncer"] = bouncer
        try:
            yield bouncer
        finally:
            del os.environ["DATABASE_POOL_URL"]
            _switch({key: _state["direct"][key] for key in CONNECTION_KEYS})
            _state.clear()


def _switch(values: dict[str, Any]) -> None:
    """Every thread's connection follows: Django's connections share the settings dict."""
    connections.close_all()
    connection.settings_dict.update(values)


def _url(settings_dict: dict[str, Any], name: str) -> str:
    user = quote(settings_dict["USER"] or "postgres", safe="")
    password = f":{quote(settings_dict['PASSWORD'], safe='')}" if settings_dict["PASSWORD"] else ""
    host, port = settings_dict["HOST"] or "127.0.0.1", settings_dict["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{name}"
