"""The database Hookline connects to: DATABASE_URL, or DATABASE_POOL_URL through PgBouncer.

PgBouncer in transaction mode hands each transaction whichever server connection is free, so a
connection through it keeps nothing from one transaction to the next. Hookline's own statements
need nothing kept: claims set planner options with SET LOCAL inside their own transaction, and
no lock outlives one. Django keeps something in one place, turned off here for pooled
connections: a server-side cursor opened outside a transaction (`QuerySet.iterator()`, which form
fields use to list their choices) is declared WITH HOLD and fetched from in later transactions,
on whichever server connection those get. Prepared statements, the other usual casualty, never
happen: Django binds parameters on the client and psycopg's `prepare_threshold` is None.

DATABASE_URL stays the PostgreSQL server itself, for what needs a session of its own:
migrations, and creating or dropping databases (docs/decisions/0023-pgbouncer-transaction-mode.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

SQLITE = "django.db.backends.sqlite3"


def database_settings(*, url: str, pool_url: str, conn_max_age: int) -> dict[str, Any]:
    """Django's `DATABASES["default"]`: `pool_url` when set (a PgBouncer in transaction mode in
    front of `url`'s server), otherwise `url`. Raises ImproperlyConfigured when `pool_url` is set
    and either URL is not PostgreSQL's; the message names the scheme, never the password."""
    if not pool_url:
        return _connection(url, conn_max_age)
    if not _is_postgresql(pool_url):
        raise ImproperlyConfigured(
            "DATABASE_POOL_URL must be a postgres:// URL of a PgBouncer in front of PostgreSQL, "
            f"not a {_scheme(pool_url)}:// URL."
        )
    if not _is_postgresql(url):
        raise ImproperlyConfigured(
            "DATABASE_POOL_URL is set, so DATABASE_URL must be the PostgreSQL server behind the "
            f"PgBouncer (migrations connect to it directly), not a {_scheme(url)}:// URL."
        )
    pooled = _connection(pool_url, conn_max_age)
    pooled["DISABLE_SERVER_SIDE_CURSORS"] = True
    return pooled


def _connection(url: str, conn_max_age: int) -> dict[str, Any]:
    config: dict[str, Any] = dict(
        dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    )
    if config["ENGINE"] == SQLITE:
        # Web, worker and beat share one file: WAL lets readers work while a writer commits, and
        # IMMEDIATE transactions take the write lock up front instead of failing half-way.
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    return config


def _is_postgresql(url: str) -> bool:
    try:
        engine = dj_database_url.parse(url)["ENGINE"]
    except ValueError:  # a scheme dj-database-url does not know
        return False
    return engine.endswith((".postgresql", ".postgis"))


def _scheme(url: str) -> str:
    return urlsplit(url).scheme or "(no scheme)"
