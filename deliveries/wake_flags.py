"""Where the wake-up flags live: in Redis when Hookline has one, else in a table of the database.

The flags (deliveries.dispatch says what they mean) need four operations, each atomic across
every process and machine: set a flag unless it is set, set it, read it, and clear it, a set flag
expiring on its own. Redis does each in one command, on REDIS_URL when it is set, else on a Redis
broker. Without Redis (a RabbitMQ or the embedded broker, and no REDIS_URL) the `WakeFlag` table
does, one row per flag and one statement per operation, its expiry reckoned by the database's
clock, which every machine shares (a process-local flag could not tell an emitter that a worker
on another machine is draining, nor that one has stopped).

A store never raises. A flag that cannot be read counts as clear, and one that cannot be set as
set by the caller: a failure costs a wake-up too many, never one too few.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import redis
from django.conf import settings
from django.db import Error, connection

from deliveries.models import WakeFlag
from deliveries.sql_names import sql_with_names

logger = logging.getLogger(__name__)


class WakeFlags(Protocol):
    def set_unless_set(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Set the flag unless it is set and unexpired; whether this call set it."""
        ...

    def set(self, name: str, holder: str, ttl_ms: int) -> None: ...

    def holder(self, name: str) -> str | None:
        """Who set the flag, or None when it is clear or expired."""
        ...

    def clear(self, name: str) -> None: ...


class RedisFlags:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def set_unless_set(self, name: str, holder: str, ttl_ms: int) -> bool:
        try:
            return bool(self.client.set(name, holder, nx=True, px=ttl_ms))
        except redis.RedisError:
            _warn()
            return True

    def set(self, name: str, holder: str, ttl_ms: int) -> None:
        try:
            self.client.set(name, holder, px=ttl_ms)
        except redis.RedisError:
            _warn()

    def holder(self, name: str) -> str | None:
        try:
            value = self.client.get(name)
        except redis.RedisError:
            _warn()
            return None
        return value.decode() if isinstance(value, bytes) else None

    def clear(self, name: str) -> None:
        try:
            self.client.delete(name)
        except redis.RedisError:
            _warn()


# The database's clock, in milliseconds since the epoch.
_NOW_MS = {
    "postgresql": "(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
}
# An upsert, because PostgreSQL empties an UNLOGGED table after a crash (and a standby that
# takes over starts it empty): the rows cannot be created once and for all.
_SET = """
INSERT INTO {WakeFlag.table} ({WakeFlag.name}, {WakeFlag.holder}, {WakeFlag.expires_at_ms})
VALUES (%s, %s, NOW_MS + %s)
ON CONFLICT ({WakeFlag.name}) DO UPDATE
SET {WakeFlag.holder} = excluded.{WakeFlag.holder},
    {WakeFlag.expires_at_ms} = excluded.{WakeFlag.expires_at_ms}
"""
_SET_UNLESS_SET = _SET + "WHERE {WakeFlag.table}.{WakeFlag.expires_at_ms} <= NOW_MS RETURNING 1"
_HOLDER = """
SELECT {WakeFlag.holder} FROM {WakeFlag.table}
WHERE {WakeFlag.name} = %s AND {WakeFlag.expires_at_ms} > NOW_MS
"""
_CLEAR = "UPDATE {WakeFlag.table} SET {WakeFlag.expires_at_ms} = 0 WHERE {WakeFlag.name} = %s"


class DatabaseFlags:
    """The flags as rows of `WakeFlag`, each operation one statement in its own transaction.

    Never inside a caller's transaction: the flag's row would stay locked until that commits,
    and every emitter would wait for it. There, a flag is not written and counts as clear.
    """

    def set_unless_set(self, name: str, holder: str, ttl_ms: int) -> bool:
        rows = self._run(_SET_UNLESS_SET, name, holder, ttl_ms)
        return rows is None or bool(rows)

    def set(self, name: str, holder: str, ttl_ms: int) -> None:
        self._run(_SET, name, holder, ttl_ms)

    def holder(self, name: str) -> str | None:
        rows = self._run(_HOLDER, name)
        return str(rows[0][0]) if rows else None

    def clear(self, name: str) -> None:
        self._run(_CLEAR, name)

    def _run(self, template: str, *params: str | int) -> list[tuple] | None:
        """The statement's rows ([] for none), or None when it could not run."""
        now_ms = _NOW_MS.get(connection.vendor)
        if connection.in_atomic_block or now_ms is None:
            return None
        sql = sql_with_names(template.replace("NOW_MS", now_ms), WakeFlag)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        except Error:  # unreachable, or its connection broken: Django reconnects later
            _warn()
            return None


_redis_stores: dict[tuple[str, int], RedisFlags] = {}


def store() -> WakeFlags:
    """The flags' store for the current settings: REDIS_URL, a Redis broker, or the database."""
    broker = settings.CELERY_BROKER_URL
    url = settings.REDIS_URL or (broker if broker.startswith(("redis://", "rediss://")) else "")
    if not url:
        return DatabaseFlags()
    key = (url, os.getpid())  # a client's connections are not shared with a forked child
    if key not in _redis_stores:
        _redis_stores[key] = RedisFlags(url)
    return _redis_stores[key]


def _warn() -> None:
    logger.warning(
        "Could not reach the wake-up flags: wake-ups are not coalesced meanwhile, and a flag "
        "left set expires by itself"
    )
