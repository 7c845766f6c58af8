"""A throwaway PostgreSQL database for benchmarks, so they never touch real data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dj_database_url
import psycopg
from django.conf import settings


def database_url(name: str) -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{name}"


@contextlib.contextmanager
def scratch_database(suffix: str) -> Iterator[str]:
    """Create `<current database>_<suffix>`, yield its URL, and drop it afterwards."""
    name = f"{settings.DATABASES['default']['NAME']}_{suffix}"
    with _server() as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with _server() as server:
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _server() -> psycopg.Connection:
    params = dj_database_url.parse(database_url("postgres"))
    return psycopg.connect(
        dbname="postgres", user=params["USER"], password=params["PASSWORD"] or None,
        host=params["HOST"], port=params["PORT"] or 5432, autocommit=True,
    )  # fmt: skip
