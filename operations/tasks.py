"""Celery tasks of operations: the retention purge."""

from __future__ import annotations

import dataclasses
import time

from celery import shared_task
from django.conf import settings

from operations.retention import retention_cutoff, retention_purge
from operations.retention_tenants import tenants_with_own_retention

# A purge stops starting batches after this long, so that it never holds a worker for long; the
# next run goes on where it stopped.
PURGE_BUDGET_SECONDS = 30.0


# Registered under its name from before the app split: the beat schedule and messages queued by
# a running installation keep working through an upgrade.
@shared_task(name="deliveries.tasks.purge_expired")
def purge_expired() -> dict[str, int | bool] | None:
    """Purge what is older than WEBHOOKS_RETENTION_DAYS (see operations.retention), or than a
    tenant's own `retention_days`; 0 days: none.

    Never deletes a failed or pending delivery. Returns the counts, or None when retention is off
    and no tenant has one of its own.
    """
    before = retention_cutoff(days=settings.WEBHOOKS_RETENTION_DAYS)
    if before is None and not tenants_with_own_retention():
        return None
    counts = retention_purge(
        before=before,
        batch_size=settings.WEBHOOKS_RETENTION_BATCH_SIZE,
        deadline=time.monotonic() + PURGE_BUDGET_SECONDS,
    )
    return dataclasses.asdict(counts)
