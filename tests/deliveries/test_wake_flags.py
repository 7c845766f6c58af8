"""The wake-up flags' stores: Redis and the database behave alike, and a store that fails never
stops a wake-up."""

from __future__ import annotations

import socket
import time

import pytest
from django.conf import settings
from django.db import connection, transaction

from deliveries import wake_flags
from deliveries.models import WakeFlag
from deliveries.wake_flags import DatabaseFlags, RedisFlags

pytestmark = pytest.mark.django_db(transaction=True)

FLAG = "hookline:test-flag"


@pytest.fixture(params=["database", "redis"])
def flags(request):
    if request.param == "database":
        yield DatabaseFlags()
        return
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the Redis store needs the suite's Redis")
    store = RedisFlags(settings.CELERY_BROKER_URL)
    store.clear(FLAG)
    yield store
    store.clear(FLAG)


def test_a_flag_is_set_once_until_cleared(flags):
    assert flags.holder(FLAG) is None
    assert flags.set_unless_set(FLAG, "queued", 2000)
    assert not flags.set_unless_set(FLAG, "someone else", 2000)
    assert flags.holder(FLAG) == "queued"

    flags.clear(FLAG)
    assert flags.holder(FLAG) is None
    assert flags.set_unless_set(FLAG, "someone else", 2000)
    assert flags.holder(FLAG) == "someone else"


def test_setting_a_flag_replaces_its_holder_and_its_time_to_live(flags):
    flags.set(FLAG, "draining:a", 100)
    flags.set(FLAG, "draining:b", 2000)
    time.sleep(0.2)
    assert flags.holder(FLAG) == "draining:b"


def test_a_flag_expires_by_itself(flags):
    assert flags.set_unless_set(FLAG, "queued", 100)
    time.sleep(0.25)
    assert flags.holder(FLAG) is None
    assert flags.set_unless_set(FLAG, "queued", 100)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_redis_counts_every_flag_as_clear_at_once():
    flags = RedisFlags(f"redis://127.0.0.1:{_closed_port()}/0")
    started = time.monotonic()

    assert flags.set_unless_set(FLAG, "queued", 2000)  # so the caller queues its wake-up
    assert flags.set_unless_set(FLAG, "queued", 2000)
    assert flags.holder(FLAG) is None
    flags.set(FLAG, "draining:a", 2000)
    flags.clear(FLAG)
    assert time.monotonic() - started < 1


def test_inside_a_transaction_the_database_flag_is_neither_written_nor_waited_for():
    flags = DatabaseFlags()
    with transaction.atomic():
        assert flags.set_unless_set(FLAG, "queued", 2000)
        assert flags.set_unless_set(FLAG, "queued", 2000)
    assert not WakeFlag.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's UNLOGGED tables")
def test_the_flags_table_is_unlogged_on_postgresql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relpersistence FROM pg_class WHERE oid = %s::regclass",
            [WakeFlag._meta.db_table],
        )
        assert cursor.fetchone() == ("u",)


@pytest.mark.parametrize(
    ("broker_url", "redis_url", "where"),
    [
        ("redis://127.0.0.1:6379/3", "", "redis://127.0.0.1:6379/3"),
        ("amqp://guest:guest@127.0.0.1:5672//", "redis://127.0.0.1:6379/4", "redis://127.0.0.1:6379/4"),
        ("redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/4", "redis://127.0.0.1:6379/4"),
        ("amqp://guest:guest@127.0.0.1:5672//", "", "database"),
        ("filesystem://", "", "database"),
    ],
)  # fmt: skip
def test_the_flags_live_on_redis_url_else_a_redis_broker_else_the_database(
    settings, broker_url, redis_url, where
):
    settings.CELERY_BROKER_URL = broker_url
    settings.REDIS_URL = redis_url

    store = wake_flags.store()

    if where == "database":
        assert isinstance(store, DatabaseFlags)
    else:
        assert isinstance(store, RedisFlags)
        kwargs = store.client.connection_pool.connection_kwargs
        assert f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}" == where
