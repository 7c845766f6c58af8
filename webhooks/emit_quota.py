"""The emit quota: at most `Tenant.max_events_per_second` events a second, over every process.

Each emit takes its events' cost, `events / rate` seconds, against the moment at which the
tenant's earlier emits are paid for (`drained_at`), a generic cell rate algorithm:

- an emit is let through when, with its cost added, that moment is at most one second ahead of
  now: an idle tenant may emit a second's worth at once, then `rate` events a second;
- a batch bigger than a second's worth goes through when nothing is owed, and the emits after it
  wait until it is paid for: the rate holds over time, and no batch is too big to ever pass;
- a refused emit costs nothing, and is told how long to wait (`retry_after`, whole seconds).

The state lives in Redis when Hookline has one (REDIS_URL, else a Redis broker), one key per
tenant changed by one Lua script, timed by Redis's clock; else in the `EmitQuota` table, one
upsert per emit, timed by the database's clock. Either way every web and worker process, on any
machine, counts against the same figure. A tenant without a quota costs nothing: no round trip.
Redis unreachable lets emits through (logged): events are never refused for want of a counter.
"""

from __future__ import annotations

import logging
import math
import os

import redis
from django.conf import settings
from django.db import connection

from deliveries.sql_names import sql_with_names
from subscriptions.models import EmitQuota, Tenant
from webhooks.errors import EmitQuotaExceededError

logger = logging.getLogger(__name__)

# A tenant's emits so far, paid for at its rate by `drained_at`; the key lives until then.
_REDIS_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local cost = tonumber(ARGV[1])
local drained_at = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local wait = drained_at + cost - now - math.max(1, cost)
if wait > tonumber(ARGV[2]) then
    return tostring(wait)
end
local ttl_ms = math.ceil((drained_at + cost - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(drained_at + cost), 'PX', ttl_ms)
return '0'
"""

# Seconds since the epoch are about 1.8e9, where a float's step is 2.4e-7 s: adding up costs
# drifts by a few steps, and a tenant exactly at its quota must not be refused for it.
ROUNDING_SLACK = 1e-6

# Seconds since the epoch by the database's clock, the same all through one statement.
_NOW = {
    "postgresql": "extract(epoch FROM statement_timestamp())::float8",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
_GREATEST = {"postgresql": "GREATEST", "sqlite": "MAX"}
_TAKE_SQL = """
INSERT INTO {EmitQuota.table} ({EmitQuota.tenant_id}, {EmitQuota.drained_at})
VALUES (%(tenant)s, NOW + %(cost)s)
ON CONFLICT ({EmitQuota.tenant_id}) DO UPDATE
SET {EmitQuota.drained_at} = GREATEST({EmitQuota.table}.{EmitQuota.drained_at}, NOW) + %(cost)s
WHERE GREATEST({EmitQuota.table}.{EmitQuota.drained_at}, NOW) + %(cost)s - NOW <= %(allowance)s
RETURNING 1
"""
_WAIT_SQL = """
SELECT GREATEST({EmitQuota.drained_at}, NOW) + %(cost)s - NOW - %(allowance)s
FROM {EmitQuota.table} WHERE {EmitQuota.tenant_id} = %(tenant)s
"""


def emit_quota_take(*, tenant: Tenant, events: int) -> None:
    """Count `events` emits against the tenant's `max_events_per_second`, if it has one.

    Raises EmitQuotaExceededError, counting nothing, when they would go over it; its
    `retry_after` says in how many whole seconds they would pass. Call it before storing
    anything: a refused emit stores nothing.
    """
    rate = tenant.max_events_per_second
    if rate is None or events <= 0:
        return
    wait = _take(tenant.id, events / rate)
    if wait > 0:
        raise EmitQuotaExceededError(
            f"Tenant {tenant.slug!r} has emitted the {rate} events a second it may "
            "(max_events_per_second).",
            retry_after=max(1, math.ceil(wait)),
        )


def _take(tenant_id: int, cost: float) -> float:
    """Take `cost` seconds of the tenant's quota; 0 when taken, else the seconds to wait."""
    client = _redis_client()
    if client is None:
        return _database_take(tenant_id, cost)
    key = f"hookline:emit-quota:{connection.settings_dict['NAME']}:{tenant_id}"
    try:
        return float(client.take(keys=[key], args=[repr(cost), repr(ROUNDING_SLACK)]))
    except redis.RedisError:
        logger.warning(
            "Could not reach the emit quota in Redis: tenant %s emits unchecked", tenant_id
        )
        return 0.0


def _database_take(tenant_id: int, cost: float) -> float:
    """The same in the `EmitQuota` table, one upsert; inside a caller's transaction, the
    tenant's row stays locked until that transaction ends (its other emits wait for it)."""
    vendor = connection.vendor
    params = {"tenant": tenant_id, "cost": cost, "allowance": max(1.0, cost) + ROUNDING_SLACK}
    with connection.cursor() as cursor:
        cursor.execute(_sql(_TAKE_SQL, vendor), params)
        if cursor.fetchone() is not None:
            return 0.0
        cursor.execute(_sql(_WAIT_SQL, vendor), params)
        row = cursor.fetchone()
    return max(float(row[0]), 0.001) if row else 0.001


def _sql(template: str, vendor: str) -> str:
    named = sql_with_names(template, EmitQuota)
    return named.replace("GREATEST", _GREATEST.get(vendor, "MAX")).replace(
        "NOW", _NOW.get(vendor, _NOW["sqlite"])
    )


class _RedisQuota:
    def __init__(self, url: str) -> None:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        # EVALSHA, loading the script on the first call and after a Redis restart.
        self.take = client.register_script(_REDIS_TAKE)


_redis_clients: dict[tuple[str, int], _RedisQuota] = {}


def _redis_client() -> _RedisQuota | None:
    broker = settings.CELERY_BROKER_URL
    url = settings.REDIS_URL or (broker if broker.startswith(("redis://", "rediss://")) else "")
    if not url:
        return None
    key = (url, os.getpid())  # a client's connections are not shared with a forked child
    if key not in _redis_clients:
        _redis_clients[key] = _RedisQuota(url)
    return _redis_clients[key]
