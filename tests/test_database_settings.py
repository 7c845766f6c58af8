"""DATABASE_URL and DATABASE_POOL_URL (config.database): where Hookline connects, and how."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.database import database_settings
from tests.worker import worker_database_url

ROOT = Path(__file__).resolve().parent.parent
DIRECT = "postgres://hookline:s3cret@db.internal:5432/hookline"
POOLED = "postgres://hookline:s3cret@pgbouncer.internal:6432/hookline"
# Nothing listens on port 1: a process that connects through this fails at once.
CLOSED_POOL = "postgres://postgres@127.0.0.1:1/hookline"


def test_without_a_pool_hookline_connects_to_database_url_as_before():
    config = database_settings(url=DIRECT, pool_url="", conn_max_age=600)

    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 5432, "hookline")
    assert config["DISABLE_SERVER_SIDE_CURSORS"] is False
    assert (config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (600, True)


def test_with_a_pool_hookline_connects_through_it_without_server_side_cursors():
    config = database_settings(url=DIRECT, pool_url=POOLED, conn_max_age=60)

    assert (config["HOST"], config["PORT"], config["NAME"]) == (
        "pgbouncer.internal",
        6432,
        "hookline",
    )
    assert config["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert config["CONN_MAX_AGE"] == 60


def test_sqlite_keeps_its_shared_file_options():
    config = database_settings(url="sqlite:///var/h.sqlite3", pool_url="", conn_max_age=600)

    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]


@pytest.mark.parametrize(
    ("url", "pool_url", "message"),
    [
        (DIRECT, "mysql://hookline:s3cret@bouncer/hookline", "not a mysql:// URL"),
        (DIRECT, "redis://:s3cret@bouncer:6379/0", "not a redis:// URL"),
        (DIRECT, "bouncer:6432", "DATABASE_POOL_URL must be a postgres:// URL"),
        ("sqlite:///var/hookline.sqlite3", POOLED, "DATABASE_URL must be the PostgreSQL server"),
    ],
)
def test_a_pool_url_is_refused_unless_both_urls_are_postgresql_without_echoing_secrets(
    url, pool_url, message
):
    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        database_settings(url=url, pool_url=pool_url, conn_max_age=600)

    assert "s3cret" not in str(refused.value)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.services
@pytest.mark.django_db
def test_migrate_connects_to_database_url_while_other_commands_use_the_pool():
    env = {"DATABASE_URL": worker_database_url(), "DATABASE_POOL_URL": CLOSED_POOL}

    migrated = manage("migrate", "--check", **env)
    through_the_pool = manage("showmigrations", "deliveries", **env)

    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert through_the_pool.returncode != 0
    assert 'connection to server at "127.0.0.1", port 1 failed' in through_the_pool.stderr
