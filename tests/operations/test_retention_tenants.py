"""Retention per tenant: `Tenant.retention_days` keeps a tenant's events, deliveries and attempts
longer or shorter than WEBHOOKS_RETENTION_DAYS. Runs on PostgreSQL (attempts in partitions by
day) and on SQLite (a plain table) alike."""

from __future__ import annotations

import io
import re
import types
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from deliveries.attempt_partitions import attempt_partitions, attempts_partitioned
from deliveries.models import Attempt, Delivery
from operations.retention import retention_cutoff, retention_purge
from operations.retention_resume import BLANKED_ATTEMPTS, CHECKED_EVENTS
from operations.tasks import purge_expired
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

NOW = timezone.now().astimezone(UTC).replace(microsecond=0)
SUCCEEDED, FAILED = Delivery.Status.SUCCEEDED, Delivery.Status.FAILED
CAPTURE = {
    "request_headers": {"webhook-id": "msg_x"},
    "response_headers": {"content-type": "text/plain"},
    "response_body": "receiver said something",
}


def delivery(endpoint, status: str, started_at: datetime) -> Delivery:
    event = Event.objects.create(
        tenant=endpoint.tenant, event_type=EventTypeFactory(), payload={}, created_at=started_at
    )
    made = Delivery.objects.create(
        event=event, endpoint=endpoint, status=status, attempt_count=1, created_at=started_at,
        finished_at=started_at + timedelta(minutes=1),
    )  # fmt: skip
    Attempt.objects.create(
        delivery=made, number=1, started_at=started_at, duration_ms=3.0, url=endpoint.url,
        response_status=200 if status == SUCCEEDED else 503, **CAPTURE,
    )  # fmt: skip
    return made


@pytest.fixture
def tenants():
    """Four tenants, each with deliveries 40 and 10 days old and an hour old, and events without
    any. Rows are made oldest first, as ids grow with time (retention's walks rely on it)."""
    slugs = {"default": None, "short": 7, "long": 90, "forever": 0}
    endpoints = {
        slug: EndpointFactory(
            tenant=TenantFactory(slug=slug, retention_days=days), url=f"http://127.0.0.1:9/{slug}"
        )
        for slug, days in slugs.items()
    }
    kind = EventTypeFactory()
    data = {slug: types.SimpleNamespace(tenant=e.tenant) for slug, e in endpoints.items()}
    for days, name in [(40, "old"), (10, "week_old")]:
        moment = (NOW - timedelta(days=days)).replace(hour=9, minute=0)
        for slug, endpoint in endpoints.items():
            setattr(data[slug], name, delivery(endpoint, SUCCEEDED, moment))
            if days == 40:
                data[slug].old_dead = delivery(endpoint, FAILED, moment)
            setattr(data[slug], f"{name}_orphan", Event.objects.create(
                tenant=endpoint.tenant, event_type=kind, payload={}, created_at=moment
            ))  # fmt: skip
    for slug, endpoint in endpoints.items():
        data[slug].recent = delivery(endpoint, SUCCEEDED, NOW - timedelta(hours=1))
    return types.SimpleNamespace(**data)


def kept(*rows) -> list[bool]:
    return [type(row).objects.filter(id=row.id).exists() for row in rows]


def captured(made: Delivery) -> bool:
    """Whether the delivery's attempt still has its captured headers and body."""
    return Attempt.objects.get(delivery=made).response_body == CAPTURE["response_body"]


def purge(before: datetime | None):
    return retention_purge(before=before, batch_size=2)


def test_a_tenant_without_its_own_retention_follows_the_global_one(tenants):
    purge(NOW - timedelta(days=30))

    data = tenants.default
    assert kept(data.old, data.old_dead, data.week_old, data.recent) == [False, True, True, True]
    assert kept(data.old.event, data.old_orphan, data.week_old_orphan) == [False, False, True]
    assert not Attempt.objects.filter(delivery_id=data.old.id).exists()
    assert not captured(data.old_dead)
    assert captured(data.week_old)


def test_a_tenant_keeping_less_loses_its_rows_earlier(tenants):
    counts = purge(NOW - timedelta(days=30))

    data = tenants.short
    assert kept(data.old, data.old_dead, data.week_old, data.recent) == [False, True, False, True]
    assert kept(data.week_old.event, data.old_orphan, data.week_old_orphan) == [False] * 3
    assert not Attempt.objects.filter(delivery_id__in=[data.old.id, data.week_old.id]).exists()
    assert Attempt.objects.filter(delivery_id=data.old_dead.id).get().number == 1
    assert not captured(data.old_dead)
    assert captured(data.recent)
    assert counts.complete
    # The default tenant's old delivery, and the short one's two.
    assert counts.deliveries == 3


def test_a_tenant_keeping_more_keeps_its_rows_whole(tenants):
    purge(NOW - timedelta(days=30))

    for data in (tenants.long, tenants.forever):
        rows = (data.old, data.old_dead, data.week_old, data.recent, data.old_orphan)
        assert kept(*rows) == [True] * 5
        assert all(captured(made) for made in (data.old, data.old_dead, data.week_old))
        assert Attempt.objects.filter(delivery__endpoint__tenant=data.tenant).count() == 4


def test_once_its_own_window_passes_a_tenant_keeping_more_loses_its_rows(tenants):
    purge(NOW - timedelta(days=30))

    with time_machine.travel(NOW + timedelta(days=60)):  # what was 40 days old is now 100
        purge(timezone.now() - timedelta(days=30))

    data = tenants.long
    assert kept(data.old, data.old_dead, data.old.event, data.old_orphan) == [
        False, True, False, False,
    ]  # fmt: skip
    assert not Attempt.objects.filter(delivery_id=data.old.id).exists()
    assert not captured(data.old_dead)
    forever = tenants.forever
    assert kept(forever.old, forever.old_orphan) == [True, True]
    assert captured(forever.old_dead)


def test_with_retention_off_only_tenants_with_their_own_are_purged(tenants, settings):
    settings.WEBHOOKS_RETENTION_DAYS = 0

    counts = purge_expired()

    assert counts is not None
    assert kept(tenants.short.old, tenants.short.week_old) == [False, False]
    assert kept(tenants.default.old, tenants.default.old_orphan) == [True, True]
    assert captured(tenants.default.old_dead)


def test_with_retention_off_and_no_tenant_of_its_own_nothing_runs(settings):
    settings.WEBHOOKS_RETENTION_DAYS = 0
    TenantFactory(slug="forever", retention_days=0)
    assert purge_expired() is None


def test_a_changed_retention_applies_at_the_next_run(tenants):
    tenants.long.tenant.retention_days = 7
    tenants.long.tenant.save(update_fields=["retention_days"])

    purge(retention_cutoff(days=30))

    data = tenants.long
    assert kept(data.old, data.week_old, data.recent) == [False, False, True]


def test_a_dropped_day_archives_whole_the_attempts_of_a_tenant_keeping_more(tenants):
    if not attempts_partitioned():
        pytest.skip("attempts are in a plain table here: no partition is dropped")
    day = (NOW - timedelta(days=40)).date()

    purge(NOW - timedelta(days=30))

    assert day not in {partition.lower for partition in attempt_partitions()}
    archived = Attempt.objects.filter(archived=True)
    long_kept = archived.filter(delivery_id__in=[tenants.long.old.id, tenants.long.old_dead.id])
    assert [a.response_body for a in long_kept] == [CAPTURE["response_body"]] * 2
    dead = archived.get(delivery_id=tenants.default.old_dead.id)
    assert (dead.response_body, dead.request_headers) == ("", {})


@pytest.mark.parametrize("global_days", [30, None], ids=["global-30-days", "global-off"])
def test_a_dry_run_counts_each_tenants_rows_by_its_own_cutoff_as_the_purge_does(
    tenants, global_days
):
    before = NOW - timedelta(days=global_days) if global_days else None
    for position in (BLANKED_ATTEMPTS, CHECKED_EVENTS):
        position.forget()  # another test's walk, over rows like these, is no run of this one's
    unchanged = (Delivery.objects.count(), Attempt.objects.count(), Event.objects.count())

    dry = retention_purge(before=before, batch_size=2, dry_run=True)

    assert (Delivery.objects.count(), Attempt.objects.count(), Event.objects.count()) == unchanged
    real = purge(before)
    assert dry == real
    assert real.deliveries == (3 if global_days else 2)  # the short tenant's two, and the default's


def test_the_commands_dry_run_with_retention_off_counts_the_tenants_with_their_own(
    tenants, settings
):
    settings.WEBHOOKS_RETENTION_DAYS = 0
    for position in (BLANKED_ATTEMPTS, CHECKED_EVENTS):
        position.forget()
    stdout = io.StringIO()

    call_command("purge", "--dry-run", stdout=stdout)

    output = stdout.getvalue()
    assert "each tenant's own retention_days" in output
    assert re.search(r"succeeded deliveries\s+2\s+would be deleted", output), output
    assert kept(tenants.short.old, tenants.short.week_old) == [True, True]
