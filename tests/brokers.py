"""The broker as tests see it from outside: how many wake-ups wait in its queue, losing them, and
pointing this process's Celery app at another broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import kombu
from celery import current_app
from django.conf import settings
from django.test import override_settings

QUEUE = "celery"  # Celery's default queue, where the wake-ups go
# The suite's own broker: Redis, or the embedded one when the suite runs without services.
SUITE_BROKER = "redis" if settings.CELERY_BROKER_URL.startswith("redis") else "embedded"


def _connection(url: str) -> kombu.Connection:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS if url.startswith("filesystem") else {}
    return kombu.Connection(url, transport_options=options, connect_timeout=2)


def waiting(url: str) -> int:
    """Messages waiting in the queue (for RabbitMQ, not those a worker holds unacknowledged)."""
    with _connection(url) as connection:
        try:
            return connection.channel().queue_declare(QUEUE, passive=True).message_count
        except connection.channel_errors:  # no such queue: nothing was ever sent to it
            return 0


def lose_messages(url: str) -> None:
    """Drop every message waiting in the queue, as a broker that lost them would."""
    with _connection(url) as connection, suppress(connection.channel_errors):
        connection.channel().queue_purge(QUEUE)


@contextmanager
def using_broker(url: str) -> Iterator[None]:
    """Send this process's tasks to `url` (and read the wake-up flags the way its workers do)."""
    if url.startswith("amqp"):
        # Publisher confirms: a message is in the queue once its publish returns, where a test
        # counts it at once from another connection.
        options = {"confirm_publish": True}
    else:
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    app = current_app
    before = (app.conf.broker_write_url, app.conf.broker_transport_options)
    with override_settings(CELERY_BROKER_URL=url, CELERY_BROKER_TRANSPORT_OPTIONS=options):
        _point_app_at(url, options)
        try:
            yield
        finally:
            _point_app_at(*before)


def _point_app_at(url: str, options: dict) -> None:
    app = current_app
    # The write URL: Celery reads `broker_url` from the environment first, where the suite's is.
    app.conf.broker_write_url = url
    app.conf.broker_transport_options = options
    # The connection and producer pools were made for the old URL (kombu keeps one pool per
    # URL, so those are found again when the URL comes back).
    app._pool = None
    app.amqp._producer_pool = None
