"""The overview's and an endpoint's figures come from the hourly counts and the pending
deliveries, never from reading attempts; dead letters are counted up to a cap."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import stats
from dashboard.status import FILTERS
from deliveries.hourly_stats import hour_of, latency_bucket
from deliveries.models import Attempt, Delivery, HourlyStat
from tests.factories import EndpointFactory, EventTypeFactory, TenantFactory
from webhooks import send_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    return client


@pytest.fixture
def endpoint():
    EventTypeFactory(name="order.paid")
    return EndpointFactory(tenant=TenantFactory(slug="acme"), url="http://127.0.0.1:9/hook")


def counted(endpoint, hours_ago: int, *, succeeded: int, failed: int, dead: int, ms: float):
    return HourlyStat.objects.create(
        endpoint=endpoint,
        hour=hour_of(timezone.now()) - timedelta(hours=hours_ago),
        succeeded=succeeded, status_2xx=succeeded, status_5xx=failed, dead=dead,
        latency={str(latency_bucket(ms)): succeeded + failed},
    )  # fmt: skip


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_overview_and_the_endpoint_page_show_the_windows_counts(staff_client, endpoint):
    counted(endpoint, 0, succeeded=700, failed=300, dead=12, ms=40.0)
    counted(endpoint, 23, succeeded=100, failed=0, dead=0, ms=40.0)
    counted(endpoint, 24, succeeded=5000, failed=5000, dead=900, ms=900.0)  # outside the window

    for path in ("/dashboard/", f"/dashboard/endpoints/{endpoint.pk}/"):
        with CaptureQueriesContext(connection) as queries:
            page = text_of(staff_client.get(path))
        assert not [q for q in queries if Attempt._meta.db_table in q["sql"]], path
        assert "800" in page, path  # delivered
        assert "72.7 %" in page, path  # 800 of 1,100 attempts
        assert "5000" not in page.replace(",", ""), path
    outcomes = stats.endpoint_outcomes([endpoint.pk], timezone.now())[endpoint.pk]
    assert (outcomes.delivered, outcomes.dead, outcomes.attempts) == (800, 12, 1100)
    assert outcomes.latency.p95 == pytest.approx(40.0, rel=0.045)


def test_the_chart_draws_the_counted_hours(staff_client, endpoint):
    counted(endpoint, 2, succeeded=30, failed=10, dead=0, ms=5.0)

    buckets = stats.hourly_attempts(HourlyStat.objects.filter(endpoint=endpoint), timezone.now())

    assert len(buckets) == stats.CHART_HOURS
    assert [(b.succeeded, b.failed) for b in buckets if b.succeeded or b.failed] == [(30, 10)]
    assert buckets[-3].succeeded == 30
    assert buckets[-1].hour == timezone.localtime(hour_of(timezone.now()))


def test_retrying_and_pending_are_counted_now_whatever_their_age(staff_client, endpoint):
    tenant = endpoint.tenant
    for n in range(3):
        send_event(tenant, "order.paid", {"n": n})
    Delivery.objects.filter(id=Delivery.objects.order_by("id").first().id).update(
        attempt_count=2, created_at=timezone.now() - timedelta(days=9)
    )

    outcomes = stats.endpoint_outcomes([endpoint.pk], timezone.now())[endpoint.pk]

    assert (outcomes.retrying, outcomes.pending) == (1, 2)
    assert "Retrying now 1 " in text_of(staff_client.get("/dashboard/"))


def test_the_live_counts_mean_what_the_status_filters_mean():
    assert {"status": Delivery.Status.PENDING, **dict(stats.RETRYING.children)} == {
        key.replace("__exact", ""): value for key, value in FILTERS["retrying"].items()
    }
    assert {"status": Delivery.Status.PENDING, **dict(stats.PENDING.children)} == FILTERS["pending"]


def test_dead_letters_past_the_cap_read_as_one_thousand_plus(staff_client, endpoint, settings):
    event = send_event(endpoint.tenant, "order.paid", {})
    Delivery.objects.filter(event=event).update(status=Delivery.Status.FAILED)
    Delivery.objects.bulk_create(
        Delivery(event=event, endpoint=endpoint, status=Delivery.Status.FAILED, attempt_count=1)
        for _ in range(stats.DEAD_COUNT_CAP)
    )

    for path in ("/dashboard/", "/dashboard/endpoints/", "/dashboard/dead-letters/"):
        page = text_of(staff_client.get(path))
        assert "1,000+" in page, path
        assert "1,001" not in page, path
    detail = text_of(staff_client.get(f"/dashboard/endpoints/{endpoint.pk}/"))
    assert "Dead letters (1,000+)" in detail
