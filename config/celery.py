"""The Celery app: `celery -A config worker` and `celery -A config beat` start from here."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import beat_init, task_prerun, worker_process_shutdown

from config.tracing import tracing_flush

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# How often beat makes sure the coming days of attempts have their partitions.
ATTEMPT_PARTITIONS_INTERVAL = 3600.0

app = Celery("hookline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_periodic_tasks(sender: Celery, **_: object) -> None:
    from django.conf import settings

    sender.add_periodic_task(
        settings.WEBHOOKS_SWEEP_INTERVAL,
        sender.signature("deliveries.tasks.sweep_due_deliveries"),
        name="sweep due deliveries",
    )
    # Scheduled even with retention off: the task reads WEBHOOKS_RETENTION_DAYS and does nothing.
    sender.add_periodic_task(
        settings.WEBHOOKS_RETENTION_INTERVAL,
        sender.signature("deliveries.tasks.purge_expired"),
        name="purge expired data",
    )
    # Does nothing unless a day is missing: days are created a week ahead (PostgreSQL only).
    sender.add_periodic_task(
        ATTEMPT_PARTITIONS_INTERVAL,
        sender.signature("deliveries.tasks.create_attempt_partitions"),
        name="create attempt partitions",
    )


@beat_init.connect
def watch_operational_alerts(**_: object) -> None:
    """Beat checks for overdue deliveries itself, on a thread: the sweeper is a task, so it needs
    a worker, and the overdue alert is there for when every worker is down."""
    import django
    from django.conf import settings

    django.setup()
    from operations.alerts import alerts_watch_start  # needs the models: after setup()

    alerts_watch_start(interval=settings.WEBHOOKS_SWEEP_INTERVAL)


@task_prerun.connect
def recycle_broken_database_connections(**_: object) -> None:
    """Reconnect after a database restart or a killed connection; keep healthy connections."""
    from django.db import close_old_connections

    close_old_connections()


@worker_process_shutdown.connect
def export_last_spans(**_: object) -> None:
    """A pool process about to exit sends the spans it still holds (tracing on only)."""
    tracing_flush()
